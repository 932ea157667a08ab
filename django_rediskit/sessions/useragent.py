"""A small user-agent parser: browser and OS family for the device list, nothing more.

Order matters: Edge and Opera also claim Chrome, Chrome also claims Safari, and every
mobile OS claims a desktop one. Good enough to tell a user "Firefox on Windows" from "Safari
on iPhone"; not meant for analytics.
"""

from __future__ import annotations

import re
from typing import Final

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


def _first(table: tuple[tuple[str, re.Pattern[str]], ...], agent: str) -> str:
    for name, pattern in table:
        if pattern.search(agent):
            return name
    return "Other"


def parse(agent: str) -> tuple[str, str]:
    """(browser family, OS family) of a User-Agent header; ("Other", "Other") if unknown."""
    agent = agent[:512]
    return _first(_BROWSERS, agent), _first(_SYSTEMS, agent)
