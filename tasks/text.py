"""Text that comes from a request, checked before it reaches a URL, a header, a file name or a result.

JSON can carry what no HTTP request or UTF-8 result can: NUL characters, lone surrogates (``"\\ud800"``
is valid JSON but not valid Unicode text) and, for headers, CR/LF and other control characters.  Each
is refused with a message naming the problem, never echoing the bad characters themselves.
"""

from __future__ import annotations

import re
import unicodedata

_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def has_lone_surrogate(text: str) -> bool:
    """True when `text` holds a surrogate code point, which no UTF-8 encoder accepts."""
    return _LONE_SURROGATE.search(text) is not None


def has_control_character(text: str) -> bool:
    """True for any control character (C0, DEL or C1: CR, LF, tab, NUL...)."""
    return any(unicodedata.category(ch) == "Cc" for ch in text)


def text_problem(text: str, *, header: bool = False) -> str | None:
    """Why `text` cannot be sent (NUL, lone surrogate, or a control character in a header), or None."""
    if "\x00" in text:
        return "must not contain NUL characters"
    if has_lone_surrogate(text):
        return "must be valid Unicode text (it holds a lone surrogate such as \\ud800)"
    if header and has_control_character(text):
        return "must not contain control characters (CR, LF, tab...): it is sent as an HTTP header"
    return None


def printable(text: str) -> str:
    """`text` with every non-printable character escaped (``\\x00``, ``\\ud800``), safe in any result."""
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)
