"""`LeaseKeeper`: an attempt's claim, released at its end and renewed while it runs.

The memory store runs on a test clock; renewals run on the loop as in production.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from worker.leases import LeaseKeeper
from worker.result_store import ClaimState, MemoryResultStore, RequestKey

KEY = RequestKey("main", "r1", "f" * 64)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def run(test: Callable[[MemoryResultStore, Clock], Awaitable[Any]]) -> Any:
    clock = Clock()
    return asyncio.run(test(MemoryResultStore(ttl_s=3600, clock=clock), clock))


async def state(store: MemoryResultStore, owner: str = "someone-else") -> ClaimState:
    return (await store.claim(KEY, owner, 30)).state


def test_given_a_new_request_then_the_attempt_holds_it_and_releases_it_at_the_end() -> None:
    async def test(store: MemoryResultStore, clock: Clock) -> tuple[ClaimState, ClaimState, ClaimState]:
        keeper = LeaseKeeper(store, lease_s=30)
        async with keeper.attempt(KEY) as attempt:
            during = await state(store)
        after = await state(store)
        await keeper.close()
        return attempt.state, during, after

    assert run(test) == (ClaimState.NEW, ClaimState.HELD, ClaimState.NEW)


def test_given_an_attempt_that_may_have_created_something_then_the_next_one_resumes() -> None:
    async def test(store: MemoryResultStore, clock: Clock) -> tuple[ClaimState, float, float]:
        keeper = LeaseKeeper(store, lease_s=30)
        async with keeper.attempt(KEY) as first:
            first.keep_started = True
        async with keeper.attempt(KEY) as second:
            pass
        await keeper.close()
        return second.state, second.started_at, first.started_at

    resumed, started_again, started_first = run(test)
    assert resumed is ClaimState.RESUMED and started_again == started_first


def test_given_a_stored_result_then_the_attempt_gets_it_and_takes_no_lease() -> None:
    async def test(store: MemoryResultStore, clock: Clock) -> tuple[ClaimState, bytes | None, ClaimState]:
        await store.put(KEY, b'{"id": "r1"}')
        keeper = LeaseKeeper(store, lease_s=30)
        async with keeper.attempt(KEY) as attempt:
            pass
        return attempt.state, attempt.stored, await state(store)

    assert run(test) == (ClaimState.STORED, b'{"id": "r1"}', ClaimState.STORED)


def test_given_an_attempt_running_past_its_first_lease_then_renewals_keep_others_out() -> None:
    async def test(store: MemoryResultStore, clock: Clock) -> ClaimState:
        keeper = LeaseKeeper(store, lease_s=0.03)  # renewed every 10 ms of loop time
        async with keeper.attempt(KEY):
            clock.now += 0.02
            await asyncio.sleep(0.05)  # the renewer runs (its 10 ms timer fires first) at test time +20 ms
            clock.now += 0.02  # past the first lease (+30 ms), within the renewed one (+50 ms)
            held = await state(store)
        await keeper.close()
        return held

    assert run(test) is ClaimState.HELD


def test_given_an_attempt_that_stopped_renewing_then_its_lease_lapses() -> None:
    async def test(store: MemoryResultStore, clock: Clock) -> ClaimState:
        keeper = LeaseKeeper(store, lease_s=30)
        async with keeper.attempt(KEY):
            await keeper.close()  # the worker dies: no more renewals
            clock.now += 31
            return await state(store)

    assert run(test) is ClaimState.RESUMED


class FailingRenewals(MemoryResultStore):
    """A store whose renewals fail (Redis gone); counts them."""

    renewals = 0

    async def renew(self, key: RequestKey, owner: str, lease_s: float) -> None:
        self.renewals += 1
        raise ConnectionError("store unreachable")


def test_given_failing_renewals_then_the_renewer_logs_and_keeps_going() -> None:
    async def test() -> int:
        store = FailingRenewals(ttl_s=3600)
        keeper = LeaseKeeper(store, lease_s=0.03)
        async with keeper.attempt(KEY):
            await asyncio.sleep(0.1)
        await keeper.close()
        return store.renewals

    assert asyncio.run(test()) >= 2


def test_closing_a_keeper_that_never_held_a_lease_is_harmless() -> None:
    async def test(store: MemoryResultStore, clock: Clock) -> None:
        await LeaseKeeper(store, lease_s=30).close()

    run(test)
