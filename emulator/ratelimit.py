"""Fixed-window rate limiting per API client, with the vendor's x-ratelimit-* headers.

Besides enforcing the quota, the limiter keeps what each client did in each of its windows (calls
charged, calls refused with 429), so a test can check a fleet's use of its quota afterwards.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

HISTORY_WINDOWS = 86_400
"""Closed windows kept per client (a day of one-second windows); older ones are forgotten."""


class _Quota:
    """One client's current window and the record of its past ones."""

    __slots__ = (
        "calls",
        "count",
        "history",
        "limit",
        "limited",
        "start",
        "total_calls",
        "total_limited",
        "window_s",
    )

    def __init__(self, start: float) -> None:
        self.start = start
        self.window_s = 0.0
        self.count = 0  # charged in this window: what the quota is enforced on
        self.calls = 0  # the same, for the report (zeroed when the report is cleared)
        self.limited = 0
        self.limit = 0
        self.total_calls = 0
        self.total_limited = 0
        self.history: deque[tuple[float, int, int, int]] = deque(maxlen=HISTORY_WINDOWS)


class RateLimiter:
    """Counts requests per key in windows that start with the key's first request."""

    def __init__(self) -> None:
        self._quotas: dict[str, _Quota] = {}
        self._limit_text: dict[tuple[int, float], str] = {}

    def hit(self, key: str, limit: int, window_s: float, now: float) -> tuple[bool, dict[str, str]]:
        """Count one request; return (allowed, headers to put on the response)."""
        quota = self._quotas.get(key)
        if quota is None:
            quota = self._quotas[key] = _Quota(now)
        elif now >= quota.start + window_s:
            if quota.calls:
                quota.history.append((quota.start, quota.limit, quota.calls, quota.limited))
            # realign to the window grid so long idle gaps do not shift it
            quota.start += window_s * math.floor((now - quota.start) / window_s)
            quota.count = quota.calls = quota.limited = 0
        quota.limit, quota.window_s = limit, window_s
        quota.count += 1
        quota.calls += 1
        quota.total_calls += 1
        allowed = quota.count <= limit
        if not allowed:
            quota.limited += 1
            quota.total_limited += 1
        reset = max(0, math.ceil(quota.start + window_s - now))
        limit_text = self._limit_text.get((limit, window_s))
        if limit_text is None:
            limit_text = self._limit_text[(limit, window_s)] = limit_header(limit, window_s)
        return allowed, {
            "x-ratelimit-limit": limit_text,
            "x-ratelimit-remaining": str(max(0, limit - quota.count)),
            "x-ratelimit-reset": str(reset),
        }

    def usage(self, clear: bool = False) -> dict[str, Any]:
        """Per key: totals and every window with calls, oldest first (the current one last)."""
        report = {}
        for key, quota in self._quotas.items():
            windows = [
                {"start": start, "limit": limit, "calls": calls, "rate_limited": limited}
                for start, limit, calls, limited in quota.history
            ]
            if quota.calls:
                windows.append(
                    {
                        "start": quota.start,
                        "limit": quota.limit,
                        "calls": quota.calls,
                        "rate_limited": quota.limited,
                    }
                )
            report[key] = {
                "limit": quota.limit,
                "window_s": quota.window_s,
                "calls": quota.total_calls,
                "rate_limited": quota.total_limited,
                "windows": windows,
            }
            if clear:
                quota.history.clear()
                quota.calls = quota.limited = quota.total_calls = quota.total_limited = 0
        return report

    def reset(self) -> None:
        self._quotas.clear()


def _window_text(window_s: float) -> str:
    return str(int(window_s)) if float(window_s).is_integer() else f"{window_s:g}"


def limit_header(limit: int, window_s: float) -> str:
    """`x-ratelimit-limit` reads like `10, 10;w=1`: the quota, then the quota policy."""
    return f"{limit}, {limit};w={_window_text(window_s)}"
