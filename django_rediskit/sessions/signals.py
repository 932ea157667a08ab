"""Signals of the session engine. Receivers get device ids, never session keys.

- ``device_logged_in(sender, request, user, device_id, new_device)``: a login registered a device
  (``new_device`` is False when an already-known device logged in again).
- ``session_revoked(sender, user_token, device_id, reason)``: a session was ended by the API, the
  device cap, a password change, a deactivation or the absolute timeout. ``reason`` is one of
  ``"user"``, ``"others"``, ``"all"``, ``"admin"``, ``"device_limit"``, ``"password_change"``,
  ``"deactivated"``, ``"absolute_timeout"`` (or what the caller passed).
- ``session_client_changed(sender, user_token, device_id)``: the IP address or user agent of a
  session changed since its last activity write (an anomaly hook, after OWASP).
"""

from __future__ import annotations

from django.dispatch import Signal

device_logged_in = Signal()
session_revoked = Signal()
session_client_changed = Signal()
