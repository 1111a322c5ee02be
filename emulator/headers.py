"""Header values as text.

aiohttp hands every request header over as text decoded from UTF-8 with `surrogateescape`, so a
byte that is not valid UTF-8 (a raw Latin-1 `ü` is the byte 0xFC) arrives as a lone surrogate.
Such text cannot be encoded again, and a JSON body holding it could never be sent. Every header
value the emulator keeps (file names, company ids, the request log, echoed credentials) goes
through `header_text` first.
"""

from __future__ import annotations


def header_text(value: str) -> str:
    """The header's raw bytes read as UTF-8 when they are valid UTF-8, else as ISO-8859-1.

    ISO-8859-1 is what HTTP historically allowed in field values (RFC 9110, section 5.5), so a
    value that is not UTF-8 as a whole is read byte for byte as Latin-1. Percent signs are not
    decoded: `M%C3%BCller.pdf` stays exactly that text.
    """
    if value.isascii():
        return value
    raw = value.encode("utf-8", "surrogateescape")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")
