"""Signals of the throttles."""

from __future__ import annotations

from django.dispatch import Signal

#: Sent when a throttle decision could not reach Redis (or Redis answered with an error) and the
#: throttle's failure policy decided instead. Keyword arguments: ``alias``, ``scope``,
#: ``exception`` and ``fail_open`` (True: the request was admitted). Sent on every such decision,
#: so keep receivers cheap (count, do not do I/O).
throttle_backend_failure = Signal()
