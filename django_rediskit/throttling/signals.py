"""Signals of the throttles."""

from __future__ import annotations

from django.dispatch import Signal

#: Sent when a throttle decision could not reach Redis (or Redis answered with an error) and the
#: throttle's failure policy decided instead. Keyword arguments: ``alias``, ``scope``,
#: ``exception`` and ``fail_open`` (True: the request was admitted). Sent on every such decision,
#: so keep receivers cheap (count, do not do I/O).
throttle_backend_failure = Signal()

#: Sent when the login guard (``throttling.login``) refuses a login attempt before its password
#: is checked. Keyword arguments: ``request`` (the HttpRequest, or None for an ``authenticate()``
#: call without one), ``username`` (case-folded, or None), ``kinds`` (the limits reached:
#: ``"ip"``, ``"username"``), ``retry_after`` (seconds) and ``degraded`` (True: Redis could not be
#: asked and the fail-closed policy refused).
login_rate_limited = Signal()
