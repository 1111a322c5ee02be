"""A wall clock that tests can move forward.

Token expiry, rate-limit windows and the document lifecycle all read this clock, so a test can
advance it instead of sleeping.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime


class Clock:
    """Real time plus an offset that only grows."""

    __slots__ = ("_offset",)

    def __init__(self) -> None:
        self._offset = 0.0

    def now(self) -> float:
        return time.time() + self._offset

    def advance(self, seconds: float) -> float:
        """Move the clock forward; returns the total offset."""
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        self._offset += seconds
        return self._offset

    @property
    def offset(self) -> float:
        return self._offset


def iso(ts: float) -> str:
    """RFC 3339 UTC timestamp with milliseconds, as the API writes dates."""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
