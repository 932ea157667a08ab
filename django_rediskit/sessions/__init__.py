"""Redis sessions with device tracking: ``SESSION_ENGINE = "django_rediskit.sessions.backend"``.

The device API lives here; see docs/sessions.md.
"""

from __future__ import annotations

from django_rediskit.sessions.devices import (
    Device,
    acount_devices,
    alist_devices,
    arevoke,
    arevoke_all,
    arevoke_others,
    count_devices,
    list_devices,
    revoke,
    revoke_all,
    revoke_others,
    revoke_session,
)
from django_rediskit.sessions.envelope import session_key_of_name

__all__ = [
    "Device",
    "acount_devices",
    "alist_devices",
    "arevoke",
    "arevoke_all",
    "arevoke_others",
    "count_devices",
    "list_devices",
    "revoke",
    "revoke_all",
    "revoke_others",
    "revoke_session",
    "session_key_of_name",
]
