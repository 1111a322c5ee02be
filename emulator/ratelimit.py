"""Fixed-window rate limiting per API client, with the vendor's x-ratelimit-* headers."""

from __future__ import annotations

import math


class _Window:
    __slots__ = ("count", "start")

    def __init__(self, start: float) -> None:
        self.start = start
        self.count = 0


class RateLimiter:
    """Counts requests per key in windows that start with the key's first request."""

    def __init__(self) -> None:
        self._windows: dict[str, _Window] = {}

    def hit(self, key: str, limit: int, window_s: float, now: float) -> tuple[bool, dict[str, str]]:
        """Count one request; return (allowed, headers to put on the response)."""
        window = self._windows.get(key)
        if window is None:
            window = self._windows[key] = _Window(now)
        elif now >= window.start + window_s:
            # realign to the window grid so long idle gaps do not shift it
            window.start += window_s * math.floor((now - window.start) / window_s)
            window.count = 0
        window.count += 1
        allowed = window.count <= limit
        reset = max(0, math.ceil(window.start + window_s - now))
        return allowed, headers(limit, window_s, max(0, limit - window.count), reset)

    def reset(self) -> None:
        self._windows.clear()


def _window_text(window_s: float) -> str:
    return str(int(window_s)) if float(window_s).is_integer() else f"{window_s:g}"


def headers(limit: int, window_s: float, remaining: int, reset: int) -> dict[str, str]:
    """`x-ratelimit-limit` reads like `10, 10;w=1`: the quota, then the quota policy."""
    return {
        "x-ratelimit-limit": f"{limit}, {limit};w={_window_text(window_s)}",
        "x-ratelimit-remaining": str(remaining),
        "x-ratelimit-reset": str(reset),
    }
