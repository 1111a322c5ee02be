"""Run-time tunable settings: faults, limits and the document lifecycle clock.

One flat object so the CLI, the admin API and the test harness share names and validation.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

DEFAULT_QUOTA = 100_000
"""Quota used when no rate limit is configured, so the x-ratelimit-* headers are always present."""


@dataclass
class Settings:
    """Everything `/_emulator/faults` can read and change while the emulator runs."""

    # faults on API operations (not the token endpoint, which has its own knobs)
    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    error_rate: float = 0.0
    error_statuses: list[int] = field(default_factory=lambda: [500, 502, 503])
    drop_rate: float = 0.0
    drop_when: str = "before"
    fault_operations: list[str] | None = None
    # every 4xx/5xx body (API and token endpoint) echoes the request's Authorization header value
    echo_credentials: bool = False
    # token endpoint
    token_latency_ms: float = 0.0
    token_error_rate: float = 0.0
    token_lifetime_s: float = 3600.0
    # rate limit applied to clients without their own quota
    rate_limit: int | None = None
    rate_window_s: float = 1.0
    # document lifecycle
    new_s: float = 0.2
    processing_s: float = 1.0
    extracted_s: float = 0.0
    review_s: float | None = None
    failure_rate: float = 0.0
    junk_rate: float = 0.0
    # bookkeeping
    log_body_limit: int = 65536

    def update(self, changes: dict[str, Any]) -> None:
        """Validate all changes first, then apply them, so a bad value changes nothing."""
        checked = {name: _check(name, value) for name, value in changes.items()}
        for name, value in checked.items():
            setattr(self, name, value)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def quota(self) -> tuple[int, float]:
        """The default (limit, window) pair for clients that have no quota of their own."""
        if self.rate_limit is None:
            return DEFAULT_QUOTA, self.rate_window_s
        return self.rate_limit, self.rate_window_s


def _non_negative(value: Any) -> float:
    number = float(value)
    if number < 0:
        raise ValueError("must be >= 0")
    return number


def _positive(value: Any) -> float:
    number = float(value)
    if number <= 0:
        raise ValueError("must be > 0")
    return number


def _share(value: Any) -> float:
    number = float(value)
    if not 0.0 <= number <= 1.0:
        raise ValueError("must be between 0 and 1")
    return number


def _optional(check: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda value: None if value is None else check(value)


def _quota(value: Any) -> int:
    number = int(value)
    if number < 1:
        raise ValueError("must be >= 1")
    return number


def _statuses(value: Iterable[Any]) -> list[int]:
    statuses = [int(v) for v in value]
    if not statuses or any(not 500 <= s <= 599 for s in statuses):
        raise ValueError("must be a non-empty list of 5xx codes")
    return statuses


def _flag(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise ValueError("must be true or false")


def _drop_when(value: Any) -> str:
    if value not in ("before", "after"):
        raise ValueError("must be 'before' or 'after'")
    return str(value)


def _operations(value: Any) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = value.split()
    return [str(v) for v in value]


_CHECKS: dict[str, Callable[[Any], Any]] = {
    "latency_ms": _non_negative,
    "jitter_ms": _non_negative,
    "error_rate": _share,
    "error_statuses": _statuses,
    "drop_rate": _share,
    "drop_when": _drop_when,
    "fault_operations": _operations,
    "echo_credentials": _flag,
    "token_latency_ms": _non_negative,
    "token_error_rate": _share,
    "token_lifetime_s": _positive,
    "rate_limit": _optional(_quota),
    "rate_window_s": _positive,
    "new_s": _non_negative,
    "processing_s": _non_negative,
    "extracted_s": _non_negative,
    "review_s": _optional(_non_negative),
    "failure_rate": _share,
    "junk_rate": _share,
    "log_body_limit": lambda v: int(_non_negative(v)),
}


def _check(name: str, value: Any) -> Any:
    check = _CHECKS.get(name)
    if check is None:
        raise ValueError(f"unknown setting {name!r}; known: {', '.join(sorted(_CHECKS))}")
    try:
        return check(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name}: {exc}") from exc
