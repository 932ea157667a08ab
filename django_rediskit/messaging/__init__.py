"""Messaging on the kit's Redis: a reliable queue on Streams, pub/sub, write-behind.

- ``queue.Queue``: at-least-once work queue (consumer group, reclaim, dead letters).
- ``pubsub.publish`` / ``pubsub.subscribe``: at-most-once broadcast with reconnect.
- ``writebehind.write_behind`` / ``write_through``: cache updates with durable DB writes.

See docs/messaging.md for the guarantees, stated plainly.
"""

from __future__ import annotations

from django_rediskit.messaging.pubsub import Message, Subscription, publish, subscribe
from django_rediskit.messaging.queue import DeadLetter, Delivery, Queue, QueueStats

__all__ = [
    "DeadLetter",
    "Delivery",
    "Message",
    "Queue",
    "QueueStats",
    "Subscription",
    "publish",
    "subscribe",
]
