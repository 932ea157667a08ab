"""Test helpers for sites that use model invalidation.

Django's ``TestCase`` wraps each test in a transaction that never commits, so ``on_commit``
callbacks (and with them every invalidation) never run. ``capture_invalidations`` runs them at
the end of the block and tells the test which tags were sent.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from django.test import TestCase

from django_rediskit import pending


@contextlib.contextmanager
def capture_invalidations(using: str = "default", execute: bool = True) -> Iterator[set[str]]:
    """Yield a set that, after the block, holds the tags the block's writes invalidated.

    ``execute=False`` only records them (Redis is left untouched)::

        with capture_invalidations() as tags:
            product.save()
        assert object_tag(Product, product.pk) in tags
    """
    sent: set[str] = set()
    # Writes earlier in the test already queued tags under a callback registered outside this
    # block; set them aside so the block's writes schedule (and report) a flush of their own.
    earlier = pending.take(using)
    try:
        with TestCase.captureOnCommitCallbacks(using=using, execute=execute):
            yield sent
            sent.update(pending.pending_tags(using))
    finally:
        pending.queue(earlier.tags, using, earlier.keys)
