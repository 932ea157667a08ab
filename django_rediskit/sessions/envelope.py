"""The bytes under ``<prefix>:s:<sid>``: a small fixed-width header, then Django's signed payload.

Layout (ASCII)::

    R1 <last activity ms: 13 digits> <client fingerprint: 8 hex> | <created ms> | <device id>
       | <user token> | <payload: django.core.signing output of SESSION_SERIALIZER>

Last activity and the fingerprint sit at a fixed offset so the activity tick can patch them with
one SETRANGE instead of rewriting the payload. The header is not signed: it only holds what Redis
scripts need to read (owner, device) and is cross-checked against the signed payload on every use.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from dataclasses import dataclass, replace
from typing import Final

MAGIC: Final = b"R1"
NO_FINGERPRINT: Final = "0" * 8
#: Django's own generator (32 chars of [a-z0-9]); anything else is refused before a key is built.
SESSION_KEY_RE: Final = re.compile(r"\A[a-z0-9]{32}\Z")
DEVICE_ID_RE: Final = re.compile(r"\A[A-Za-z0-9_-]{22}\Z")
_USER_TOKEN_RE: Final = re.compile(r"\A[A-Za-z0-9_.@-]{1,64}\Z")
_HEADER_LEN: Final = 2 + 13 + 8
_MAX_MS: Final = 10**13 - 1


def now_ms() -> int:
    return int(time.time() * 1000)


def is_session_key(value: object) -> bool:
    return isinstance(value, str) and SESSION_KEY_RE.match(value) is not None


def new_device_id() -> str:
    """128 random bits: says nothing about the session key, so it is safe in URLs and logs."""
    return secrets.token_urlsafe(16)


def user_token(user_id: object) -> str:
    """The user's id as it appears in keys (inside a ``{hash tag}``): the pk itself when it is
    plain, else a digest, so braces, colons or long strings can never reshape a key."""
    if user_id is None or user_id == "":
        return ""
    text = str(user_id)
    if _USER_TOKEN_RE.match(text):
        return text
    return "~" + hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def fingerprint(ip: str, user_agent: str) -> str:
    """8 hex chars that change when the client's IP or user agent does (not a secret)."""
    return hashlib.blake2b(f"{ip}\0{user_agent}".encode(), digest_size=4).hexdigest()


@dataclass(frozen=True)
class Envelope:
    uid: str
    device_id: str
    created_ms: int
    activity_ms: int
    fingerprint: str
    payload: bytes

    def dump(self) -> bytes:
        header = (
            f"{min(self.activity_ms, _MAX_MS):013d}{self.fingerprint}"
            f"|{min(self.created_ms, _MAX_MS):013d}|{self.device_id}|{self.uid}|"
        )
        return MAGIC + header.encode() + self.payload

    def touched(self, activity_ms: int, client_fingerprint: str) -> Envelope:
        return replace(self, activity_ms=activity_ms, fingerprint=client_fingerprint)

    @classmethod
    def parse(cls, raw: bytes) -> Envelope | None:
        """The envelope, or None for anything not written by this engine (never raises)."""
        if not isinstance(raw, bytes) or not raw.startswith(MAGIC) or len(raw) < _HEADER_LEN + 1:
            return None
        activity, fp = raw[2:15], raw[15:_HEADER_LEN]
        parts = raw[_HEADER_LEN:].split(b"|", 4)
        if len(parts) != 5 or parts[0] != b"" or not activity.isdigit():
            return None
        _, created, device, uid, payload = parts
        try:
            device_id, user, fp_text = device.decode("ascii"), uid.decode("ascii"), fp.decode()
        except UnicodeDecodeError:
            return None
        if not created.isdigit() or not re.fullmatch(r"[0-9a-f]{8}", fp_text):
            return None
        if (device_id or user) and not (
            DEVICE_ID_RE.match(device_id) and user_token(user) == user and user
        ):
            return None
        return cls(user, device_id, int(created), int(activity), fp_text, payload)
