"""Identifier generators shaped like the real API's ids."""

from __future__ import annotations

import itertools
import secrets
import uuid

_MACHINE = secrets.token_hex(5)
_COUNTER = itertools.count(secrets.randbelow(1 << 24))


def object_id(now: float) -> str:
    """Return a 24-hex id (MongoDB ObjectId layout), the shape of every document/file/project id.

    The leading timestamp makes ids grow with creation time, like the real ones.
    """
    return f"{int(now) & 0xFFFFFFFF:08x}{_MACHINE}{next(_COUNTER) & 0xFFFFFF:06x}"


def enrichment_id() -> str:
    """Enrichment records are identified by UUIDs."""
    return str(uuid.uuid4())


def is_object_id(value: str) -> bool:
    """True for 24 hex characters, the only id shape the real API hands out for projects/companies."""
    if len(value) != 24:
        return False
    try:
        int(value, 16)
    except ValueError:
        return False
    return True
