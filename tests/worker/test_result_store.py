"""The idempotency stores: results and claims, with expiry, in memory and in Redis."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from worker.messages import Result
from worker.result_store import ClaimState, FallibleStoreGuard, MemoryResultStore, RedisResultStore


def _result(request_id: str) -> Result:
    return Result(id=request_id, connection="c", operation="documentsGetById", status="succeeded",
                  http_status=200, data={"id": "d"}, error=None, attempts=1, duration_ms=1.0)  # fmt: skip


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def _claims(store: Any, wait_past_lease: Callable[[], Any]) -> None:
    assert (await store.claim("c1", "A", 1.0))[0] is ClaimState.NEW
    assert (await store.claim("c1", "B", 1.0))[0] is ClaimState.HELD
    await store.finish("c1", "B", keep_started=False)  # not B's lease: nothing changes
    assert (await store.claim("c1", "B", 1.0))[0] is ClaimState.HELD
    await store.finish("c1", "A", keep_started=True)  # A may have created something
    assert (await store.claim("c1", "B", 1.0))[0] is ClaimState.RESUMED
    await store.finish("c1", "B", keep_started=False)  # B knows nothing was created
    assert (await store.claim("c1", "C", 1.0))[0] is ClaimState.NEW
    await store.put(_result("c1"))  # a result supersedes lease and marker
    assert (await store.claim("c1", "D", 1.0))[0] is ClaimState.NEW
    await wait_past_lease()  # D died without finishing: its lease lapses
    state, started_at = await store.claim("c1", "E", 1.0)
    assert state is ClaimState.RESUMED and started_at > 0


def _exercise(store: Any, wait_past_lease: Callable[[], Any]) -> None:
    async def run() -> None:
        assert await store.get("r1") is None
        await store.put(_result("r1"))
        assert (await store.get("r1")).data == {"id": "d"}
        await _claims(store, wait_past_lease)
        await store.close()

    asyncio.run(run())


def test_the_memory_store_keeps_results_and_tells_claim_states_apart() -> None:
    clock = FakeClock()

    async def wait() -> None:
        clock.now += 1.5

    _exercise(MemoryResultStore(ttl_s=10, clock=clock), wait)


def test_the_redis_store_keeps_results_and_tells_claim_states_apart(redis_url: str) -> None:
    prefix = f"hypatos-test-{uuid.uuid4().hex[:8]}:"
    _exercise(RedisResultStore.from_url(redis_url, ttl_s=60, prefix=prefix), lambda: asyncio.sleep(1.2))


def test_a_renewed_lease_outlives_its_first_term(redis_url: str) -> None:
    store = RedisResultStore.from_url(redis_url, ttl_s=60, prefix=f"hypatos-test-{uuid.uuid4().hex[:8]}:")

    async def run() -> ClaimState:
        await store.claim("r", "A", 0.5)
        for _ in range(4):
            await asyncio.sleep(0.25)
            await store.renew("r", "A", 0.5)
        state, _ = await store.claim("r", "B", 0.5)
        await store.close()
        return state

    assert asyncio.run(run()) is ClaimState.HELD


def test_given_redis_down_then_the_guard_lets_requests_through() -> None:
    store = FallibleStoreGuard(RedisResultStore.from_url("redis://127.0.0.1:1/0", ttl_s=60))

    async def run() -> tuple[Any, ClaimState]:
        got = await store.get("r1")
        await store.put(_result("r1"))
        claimed, _ = await store.claim("r1", "A", 1.0)
        await store.renew("r1", "A", 1.0)
        await store.finish("r1", "A", keep_started=False)
        await store.close()
        return got, claimed

    assert asyncio.run(run()) == (None, ClaimState.NEW)


@pytest.mark.timeout(10)
def test_expiring_many_entries_does_not_scan_the_whole_store() -> None:
    clock = FakeClock()
    store = MemoryResultStore(ttl_s=10, clock=clock)

    async def run() -> None:
        for index in range(20_000):
            await store.put(_result(f"r{index}"))
            await store.get(f"r{index}")

    asyncio.run(run())
