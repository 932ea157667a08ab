"""User agents for the device list: browser / OS family and a short, stored form.

``ua-parser`` (the ``useragent`` extra) is used when it is installed; otherwise a small built-in
parser. Its order matters: Edge and Opera also claim Chrome, Chrome also claims Safari, and
every mobile OS claims a desktop one. Good enough to tell a user "Firefox on Windows" from
"Safari on iPhone"; not meant for analytics.

The index stores ``"<ip>|<browser>|<os>|<short agent>"`` in at most ``CLIENT_FIELD_MAX`` bytes,
so the per-user HASH keeps Redis's compact listpack encoding (``hash-max-listpack-value`` is 64;
61 makes one session with its client fit a 160-byte allocation, 32 B less than at 64).
The IP is kept whole (an IPv6 address leaves little room), then the families, then the agent. The
short agent drops the tokens every browser sends (``Mozilla/5.0``, ``AppleWebKit/...``,
``(KHTML, like Gecko)``, ``Gecko/...``, ``Safari/...`` in another browser's agent); if it is
still too long, the middle is cut (``~``) and the last product token kept.
"""

from __future__ import annotations

import functools
import importlib
import re
from types import ModuleType
from typing import Final


def _optional_parser() -> ModuleType | None:
    """ua-parser if the ``useragent`` extra is installed, else None (built-in rules)."""
    try:
        return importlib.import_module("ua_parser")
    except ImportError:
        return None


ua_parser: ModuleType | None = _optional_parser()

#: Largest stored client entry: Redis keeps a hash listpack-encoded while values are <= 64 B,
#: and at <= 61 B a user with one session fits jemalloc's 160-byte size class.
CLIENT_FIELD_MAX: Final = 61
_FAMILY_MAX: Final = 24
_IP_MAX: Final = 45  # the longest textual IPv6 form (IPv4-mapped)
_BROWSERS: Final = (
    ("Edge", re.compile(r"Edg(?:e|A|iOS)?/")),
    ("Opera", re.compile(r"OPR/|Opera")),
    ("Samsung Internet", re.compile(r"SamsungBrowser/")),
    ("Firefox", re.compile(r"Firefox/|FxiOS/")),
    ("Chrome", re.compile(r"Chrome/|CriOS/|Chromium/")),
    ("Safari", re.compile(r"Safari/")),
    ("Internet Explorer", re.compile(r"MSIE |Trident/")),
    ("curl", re.compile(r"^curl/")),
)
_SYSTEMS: Final = (
    ("iOS", re.compile(r"iPhone|iPad|iPod")),
    ("Android", re.compile(r"Android")),
    ("ChromeOS", re.compile(r"CrOS")),
    ("Windows", re.compile(r"Windows")),
    ("macOS", re.compile(r"Macintosh|Mac OS X")),
    ("Linux", re.compile(r"Linux|X11")),
)
_NOISE: Final = re.compile(
    r"Mozilla/5\.0\s*|AppleWebKit/[\w.+]+\s*|\(KHTML, like Gecko\)\s*|Gecko/\d+\s*"
)
#: "Safari/537.36" in a Chrome-based or iOS Firefox agent says nothing.
_SAFARI_TOKEN: Final = re.compile(r"\bSafari/[\d.]+")
_CLAIMS_SAFARI: Final = re.compile(r"(?:Chrome|CriOS|FxiOS|EdgiOS)/")


def _first(table: tuple[tuple[str, re.Pattern[str]], ...], agent: str) -> str:
    for name, pattern in table:
        if pattern.search(agent):
            return name
    return "Other"


def builtin_parse(agent: str) -> tuple[str, str]:
    """(browser family, OS family) by the built-in rules; ("Other", "Other") if unknown."""
    agent = agent[:512]
    return _first(_BROWSERS, agent), _first(_SYSTEMS, agent)


@functools.lru_cache(maxsize=1024)
def parse(agent: str) -> tuple[str, str]:
    """(browser family, OS family) of a User-Agent header; "Other" where unknown. Cached: a
    site sees few distinct agents, and ua-parser costs about a millisecond per miss."""
    agent = agent[:512]
    if ua_parser is None:
        return builtin_parse(agent)
    browser, system = ua_parser.parse_user_agent(agent), ua_parser.parse_os(agent)
    return (
        browser.family if browser is not None else "Other",
        system.family if system is not None else "Other",
    )


def _clean(text: str, limit: int) -> str:
    """ASCII only (Redis bytes = characters), no field separator, at most ``limit`` chars."""
    ascii_text = text.encode("ascii", "replace").decode("ascii").replace("|", "/")
    return " ".join(ascii_text.split())[:limit]


def shorten(agent: str) -> str:
    """The user agent without the tokens every browser sends (see the module docstring)."""
    short = _NOISE.sub(" ", agent[:512])
    if _CLAIMS_SAFARI.search(short):
        short = _SAFARI_TOKEN.sub(" ", short)
    return " ".join(short.split())


def client_field(ip: str, agent: str) -> str:
    """The stored ``"<ip>|<browser>|<os>|<short agent>"``, at most ``CLIENT_FIELD_MAX`` bytes."""
    browser, system = parse(agent)
    address = _clean(ip, _IP_MAX).replace(" ", "")
    family_room = min(_FAMILY_MAX, (CLIENT_FIELD_MAX - len(address) - 3) // 2)
    browser, system = _clean(browser, family_room), _clean(system, family_room)
    head = f"{address}|{browser}|{system}|"
    short, room = _clean(shorten(agent), 512), CLIENT_FIELD_MAX - len(head)
    if len(short) > room:
        # Keep the last product token ("Firefox/128.0") whole; cut the platform comment.
        rest, _, last = short.rpartition(" ")
        short = f"{rest[: room - len(last) - 2]}~ {last}" if len(last) < room // 2 else short
    return head + short[:room].rstrip()


def read_client_field(raw: str) -> tuple[str, str, str, str]:
    """(IP, browser, OS, short agent) of a stored entry; families are re-derived from the agent
    where they are missing (entries converted from the first index layout)."""
    ip, browser, system, agent = ([*raw.split("|", 3), "", "", ""])[:4]
    if not browser or not system:
        browser, system = parse(agent)
    return ip, browser, system, agent
