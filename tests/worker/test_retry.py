"""The retry policy's pieces, driven with tenacity's own `RetryCallState`.

Server-hinted waits, the stop before a long wait, broker-side delays, and the assembled policy.
"""

from __future__ import annotations

import asyncio

import pytest
from tenacity import AsyncRetrying, RetryCallState, wait_fixed

from worker.errors import PermanentError, TransientError
from worker.retry import RetryPolicy, ServerHintWait, StopWhenWaitExceeds, broker_delay_s, build_retrying


def state(error: BaseException | None = None, *, attempt: int = 1, upcoming_s: float = 0.0) -> RetryCallState:
    """The state tenacity hands its wait and stop strategies after attempt number `attempt`."""
    retry_state = RetryCallState(retry_object=AsyncRetrying(), fn=None, args=(), kwargs={})
    retry_state.attempt_number = attempt
    if error is not None:
        retry_state.set_exception((type(error), error, None))
    retry_state.upcoming_sleep = upcoming_s
    return retry_state


def hinted(seconds: float | None) -> TransientError:
    return TransientError("rate limited", code="rate_limited", retry_after_s=seconds)


def test_given_a_server_hint_then_the_wait_is_the_hint_plus_a_little_jitter() -> None:
    wait = ServerHintWait(wait_fixed(7), max_s=30)
    waits = [wait(state(hinted(2.0))) for _ in range(50)]
    assert all(2.0 <= w <= 2.25 for w in waits) and len(set(waits)) > 1


def test_given_a_hint_beyond_the_longest_wait_then_the_wait_is_capped() -> None:
    assert ServerHintWait(wait_fixed(7), max_s=30)(state(hinted(600))) == 30


def test_given_a_negative_hint_then_the_wait_is_only_the_jitter() -> None:
    assert 0 <= ServerHintWait(wait_fixed(7), max_s=30)(state(hinted(-5))) <= 0.25


def test_given_no_hint_then_the_fallback_wait_applies() -> None:
    wait = ServerHintWait(wait_fixed(7), max_s=30)
    assert wait(state(hinted(None))) == 7.0
    assert wait(state(PermanentError("no"))) == 7.0
    assert wait(state()) == 7.0  # no outcome yet


def test_a_wait_longer_than_the_inline_limit_stops_the_retries_and_one_within_it_does_not() -> None:
    stop = StopWhenWaitExceeds(5.0)
    assert stop(state(hinted(9), upcoming_s=5.01)) is True
    assert stop(state(hinted(5), upcoming_s=5.0)) is False


def test_given_a_hint_then_the_broker_delay_follows_it_within_the_maximum() -> None:
    policy = RetryPolicy()
    assert all(30 <= broker_delay_s(hinted(30), 0, policy, 300) <= 31 for _ in range(20))
    assert broker_delay_s(hinted(3600), 0, policy, 300) == 300


def test_without_a_hint_the_broker_delay_backs_off_with_the_deferrals_and_never_under_a_second() -> None:
    policy = RetryPolicy(initial_s=0.5)
    first = [broker_delay_s(TransientError("x"), 0, policy, 300) for _ in range(100)]
    later = [broker_delay_s(TransientError("x"), 6, policy, 300) for _ in range(100)]
    assert all(1.0 <= d <= 4.0 for d in first)  # up to 0.5 s * 2**3
    assert all(1.0 <= d <= 256.0 for d in later) and max(later) > 4.0
    assert broker_delay_s(hinted(0), 0, policy, 300) == 1.0


def _retried(
    policy: RetryPolicy, outcomes: list[BaseException | str]
) -> tuple[str | BaseException, list[float]]:
    """Run a call whose attempts give `outcomes` in turn through `build_retrying`; what it ended with."""
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    async def run() -> str | BaseException:
        try:
            async for attempt in build_retrying(policy, event="test_retrying", sleep=sleep):
                with attempt:
                    outcome = outcomes.pop(0)
                    if isinstance(outcome, BaseException):
                        raise outcome
                    return outcome
        except Exception as exc:
            return exc
        raise AssertionError("unreachable")

    return asyncio.run(run()), waits


def test_given_transient_failures_then_the_policy_retries_until_success() -> None:
    policy = RetryPolicy(attempts=4, initial_s=0.5, max_s=10)
    outcome, waits = _retried(policy, [TransientError("a"), hinted(1.0), "done"])
    assert outcome == "done" and len(waits) == 2 and 1.0 <= waits[1] <= 1.25


def test_given_a_permanent_failure_then_the_policy_does_not_retry() -> None:
    error = PermanentError("no", code="bad_request")
    outcome, waits = _retried(RetryPolicy(), [error, "never"])
    assert outcome is error and waits == []


@pytest.mark.parametrize("attempts", [1, 2, 3])
def test_the_policy_stops_at_its_attempt_count_and_reraises_the_last_error(attempts: int) -> None:
    errors: list[BaseException | str] = [TransientError(f"failure {n}") for n in range(5)]
    last = errors[attempts - 1]
    outcome, waits = _retried(RetryPolicy(attempts=attempts, initial_s=0.01, max_s=0.1), errors)
    assert outcome is last and len(waits) == attempts - 1
