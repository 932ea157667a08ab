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
from typing import Final, TypeGuard
from urllib.parse import quote, unquote_to_bytes

MAGIC: Final = b"R1"
NO_FINGERPRINT: Final = "0" * 8
#: What Django's own generator makes (32 chars of [a-z0-9]): such keys name their Redis key as
#: they are. Any other key Django accepts is escaped first (see :func:`session_name`).
SESSION_KEY_RE: Final = re.compile(r"\A[a-z0-9]{32}\Z")
#: Django's ``SessionBase._validate_session_key``: a key of at least 8 characters.
MIN_SESSION_KEY_LENGTH: Final = 8
#: First character of an escaped name; never in a generated key, so the two kinds cannot meet.
ESCAPED_MARK: Final = "~"
_DIGEST_CHARS: Final = 5
_ESCAPED_RE: Final = re.compile(r"\A~[0-9a-f]{5}[A-Za-z0-9_.~%-]*\Z")
DEVICE_ID_RE: Final = re.compile(r"\A[A-Za-z0-9_-]{22}\Z")
_USER_TOKEN_RE: Final = re.compile(r"\A[A-Za-z0-9_.@-]{1,64}\Z")
_HEADER_LEN: Final = 2 + 13 + 8
_MAX_MS: Final = 10**13 - 1


def now_ms() -> int:
    return int(time.time() * 1000)


def is_session_key(value: object) -> TypeGuard[str]:
    """What Django's ``_validate_session_key`` accepts (a string of 8+ characters), minus
    non-strings: a key is never refused for its characters, it is escaped where it meets Redis."""
    return isinstance(value, str) and len(value) >= MIN_SESSION_KEY_LENGTH


def session_name(session_key: str) -> str:
    """The session's name in Redis: its data key's last part and its field in the user index.

    An injective function of the key, so two sessions can never share storage:

    * a key Django generated (``[a-z0-9]{32}``) is its own name, as it always was (no migration);
    * any other key becomes ``~`` + 5 hex digits of its digest + its UTF-8 bytes
      percent-escaped (only ``A-Z a-z 0-9 _ . - ~`` stay as they are). The ``~`` keeps escaped
      names apart from generated ones; percent-escaping is reversible, so distinct keys get
      distinct names. No glob metacharacter, ``{``/``}`` hash tag, ``:``, space or ``#`` survives,
      so a name can neither widen a SCAN pattern, move the key to a chosen cluster slot, nor pass
      for a ``#`` client field of the index. The digest comes first because the index names a
      session's client field after the first 6 characters of its name
      (``lua/session_user.lua``): keys sharing a prefix still get distinct client fields.

    The input is always a session key, never a name: a name passed back in is escaped again
    (it starts with ``~``), so knowing a name never opens the session it names.
    """
    if SESSION_KEY_RE.match(session_key):
        return session_key
    raw = session_key.encode("utf-8", "surrogatepass")  # every str, lone surrogates included
    digest = hashlib.blake2b(raw, digest_size=4).hexdigest()[:_DIGEST_CHARS]
    return ESCAPED_MARK + digest + quote(raw, safe="")


def session_key_of_name(name: str) -> str | None:
    """The session key whose :func:`session_name` is ``name``, or None if ``name`` is not one
    (for tools that start from a Redis key, such as the admin inspector)."""
    if SESSION_KEY_RE.match(name):
        return name
    if not _ESCAPED_RE.match(name):
        return None
    try:
        key = unquote_to_bytes(name[1 + _DIGEST_CHARS :]).decode("utf-8", "surrogatepass")
    except UnicodeDecodeError:
        return None
    # Only the one canonical spelling names a session (no second form of the same key).
    if not is_session_key(key) or session_name(key) != name:
        return None
    return key


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
