"""In-call retry policy: one tenacity `AsyncRetrying`, built in one place for every caller.

The policy retries only `TransientError` (429, 5xx, timeouts, dropped connections).  The wait is what
the server asked for when it said (``x-ratelimit-reset``, ``Retry-After``), otherwise exponential
backoff with full jitter.  The run stops at `attempts` or before the next wait would overrun
`budget_s`, whichever comes first, and then re-raises the last error.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    stop_before_delay,
    wait_random_exponential,
)
from tenacity.stop import stop_base
from tenacity.wait import wait_base

from worker.errors import TransientError

log = structlog.get_logger(__name__)

Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try in one call: attempt count, time budget, backoff bounds, longest wait in place.

    A wait longer than `inline_wait_max_s` ends the call instead: the caller hands such waits to the
    broker, so no worker capacity is held while waiting (see `tasks.execute`).
    """

    attempts: int = 4
    budget_s: float = 30.0
    initial_s: float = 0.5
    max_s: float = 10.0
    inline_wait_max_s: float = 5.0


class ServerHintWait(wait_base):
    """Wait as long as the error's ``retry_after_s`` says, else fall back to another wait."""

    def __init__(self, fallback: wait_base, *, max_s: float) -> None:
        self.fallback = fallback
        self.max_s = max_s

    def __call__(self, retry_state: RetryCallState) -> float:
        error = retry_state.outcome.exception() if retry_state.outcome else None
        hint = getattr(error, "retry_after_s", None)
        if hint is None:
            return float(self.fallback(retry_state))
        # A little jitter so a fleet told "reset in 1 s" does not return in the same millisecond.
        return min(max(float(hint), 0.0) + random.uniform(0, 0.25), self.max_s)


def broker_delay_s(error: BaseException, deferrals: int, policy: RetryPolicy, max_delay_s: float) -> float:
    """How long a request waits on the broker before its next delivery.

    The server's hint when it gave one, else exponential backoff with full jitter on the number of
    earlier deferrals, capped at `max_delay_s`; never under one second (the broker's resolution).
    """
    hint = getattr(error, "retry_after_s", None)
    if hint is not None:
        delay = float(hint) + random.uniform(0, 1)
    else:
        delay = random.uniform(0, policy.initial_s * 2 ** (deferrals + 3))
    return max(1.0, min(delay, max_delay_s))


def _log_before_sleep(event: str) -> Callable[[RetryCallState], None]:
    def log_it(retry_state: RetryCallState) -> None:
        error = retry_state.outcome.exception() if retry_state.outcome else None
        log.warning(
            event,
            attempt=retry_state.attempt_number,
            wait_s=round(retry_state.upcoming_sleep, 3),
            error_code=getattr(error, "code", type(error).__name__),
            http_status=getattr(error, "http_status", None),
        )

    return log_it


class StopWhenWaitExceeds(stop_base):
    """Stop rather than start a wait longer than `max_s`."""

    def __init__(self, max_s: float) -> None:
        self.max_s = max_s

    def __call__(self, retry_state: RetryCallState) -> bool:
        return retry_state.upcoming_sleep > self.max_s


def is_transient(error: BaseException) -> bool:
    """The default retry predicate: any `TransientError`."""
    return isinstance(error, TransientError)


def build_retrying(
    policy: RetryPolicy,
    *,
    event: str,
    sleep: Sleep = asyncio.sleep,
    retry_on: Callable[[BaseException], bool] = is_transient,
) -> AsyncRetrying:
    """The retry loop for one call; `event` names the log line written before each wait."""
    return AsyncRetrying(
        stop=stop_after_attempt(policy.attempts)
        | stop_before_delay(policy.budget_s)
        | StopWhenWaitExceeds(policy.inline_wait_max_s),
        wait=ServerHintWait(
            wait_random_exponential(multiplier=policy.initial_s, max=policy.max_s),
            max_s=max(policy.max_s, policy.budget_s),
        ),
        retry=retry_if_exception(retry_on),
        before_sleep=_log_before_sleep(event),
        sleep=sleep,
        reraise=True,
    )
