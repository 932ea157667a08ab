"""How bytes from Redis become text on a page: every non-printable character visibly escaped.

Key names and values may hold NUL, CR, ESC, bidi overrides or zero-width characters; shown raw
they make two different keys look the same (or rewrite a terminal). ``escape_bytes`` is
injective, so different bytes always give different text:

* printable characters stay as they are, a backslash is doubled (``\\\\``);
* an ASCII control character becomes ``\\xNN`` (``\\t``, ``\\n``, ``\\r`` for the usual three);
* a byte that is not part of valid UTF-8 becomes ``\\xNN`` (always >= ``\\x80``, so never
  confused with the ASCII escapes above);
* a non-printable Unicode character (category C*, Z* other than the space) becomes ``\\uNNNN``
  or ``\\UNNNNNNNN``, never ``\\xNN``, so U+0085 and the lone byte 0x85 stay apart.

No Django import: the management commands use it too. Escaping for HTML is the template's job.
"""

from __future__ import annotations

import hashlib

#: Names longer than this (in characters, after escaping) are cut in lists and titles.
NAME_LIMIT = 200
_SHORT = {"\t": "\\t", "\n": "\\n", "\r": "\\r", "\\": "\\\\"}


def _escape_char(char: str, keep_newlines: bool) -> str:
    if keep_newlines and char in "\n\t":
        return char
    short = _SHORT.get(char)
    if short is not None:
        return short
    if char.isprintable():
        return char
    code = ord(char)
    if code < 0x80:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def escape_text(text: str, *, keep_newlines: bool = False) -> str:
    """``text`` with backslashes doubled and every non-printable character escaped."""
    if text.isprintable() and "\\" not in text:  # the common case: nothing to do
        return text
    return "".join(_escape_char(char, keep_newlines) for char in text)


def escape_bytes(data: bytes, *, keep_newlines: bool = False) -> str:
    """Bytes as UTF-8 text, undecodable bytes and non-printable characters escaped.

    ``keep_newlines`` leaves LF and TAB as they are (values shown in a ``<pre>`` stay readable);
    names never keep them, a name is one line.
    """
    text = data.decode("utf-8", "surrogateescape")
    if text.isprintable() and "\\" not in text:
        return text
    out = []
    for char in text:
        code = ord(char)
        if 0xDC80 <= code <= 0xDCFF:  # surrogateescape: an undecodable byte
            out.append(f"\\x{code - 0xDC00:02x}")
        else:
            out.append(_escape_char(char, keep_newlines))
    return "".join(out)


def shorten(text: str, size: int, limit: int = NAME_LIMIT) -> str:
    """``text`` cut to ``limit`` characters, saying how many bytes the whole name has."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({size:,} bytes)"


#: Bytes of a name escaped for a label: enough for ``NAME_LIMIT`` characters however escaped
#: (a 4-byte UTF-8 character gives one character, an escaped byte four), without walking a
#: 1 MB name to show 200 characters of it.
_LABEL_BYTES = 4 * NAME_LIMIT


def label(data: bytes, limit: int = NAME_LIMIT) -> str:
    """A name for lists, titles, messages and the audit log: escaped, and cut when long.

    A cut name says its length in bytes and the start of its SHA-256, so two long names that
    share their first ``limit`` characters still read differently (the full escaped name, shown
    on the key page, is injective by itself).
    """
    text = escape_bytes(data[:_LABEL_BYTES])
    if len(data) <= _LABEL_BYTES and len(text) <= limit:
        return text
    digest = hashlib.sha256(data).hexdigest()[:12]
    return f"{text[:limit]}… ({len(data):,} bytes, sha256 {digest})"
