"""The idempotency stores: results and claims by (connection, id, fingerprint), with expiry, in memory and
in Redis."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from worker.result_store import (
    ClaimState,
    FallibleStoreGuard,
    MemoryResultStore,
    RedisResultStore,
    RequestKey,
)

FP_A = "a" * 64
FP_B = "b" * 64


def key(request_id: str, fingerprint: str = FP_A, connection: str = "acme") -> RequestKey:
    return RequestKey(connection, request_id, fingerprint)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def _state(store: Any, request: RequestKey, owner: str) -> ClaimState:
    return (await store.claim(request, owner, 1.0)).state


async def _claims(store: Any, wait_past_lease: Callable[[], Any]) -> None:
    c1 = key("c1")
    assert await _state(store, c1, "A") is ClaimState.NEW
    assert await _state(store, c1, "B") is ClaimState.HELD
    assert await _state(store, key("c1", FP_B), "X") is ClaimState.CONFLICT  # same id, other request
    await store.finish(c1, "B", keep_started=False)  # not B's lease: nothing changes
    assert await _state(store, c1, "B") is ClaimState.HELD
    await store.finish(c1, "A", keep_started=True)  # A may have created something
    assert await _state(store, c1, "B") is ClaimState.RESUMED
    assert await _state(store, key("c1", FP_B), "X") is ClaimState.CONFLICT  # the marker knows the request
    await store.finish(c1, "B", keep_started=False)  # B knows nothing was created
    assert await _state(store, c1, "C") is ClaimState.NEW
    await store.put(c1, b'{"id": "c1"}')  # a result supersedes lease and marker
    claim = await store.claim(c1, "D", 1.0)
    assert claim.state is ClaimState.STORED and claim.stored == b'{"id": "c1"}'
    assert await _state(store, key("c1", FP_B), "X") is ClaimState.CONFLICT
    # another connection has its own ids
    assert await _state(store, key("c1", FP_B, connection="other"), "Y") is ClaimState.NEW
    c2 = key("c2")
    assert await _state(store, c2, "D") is ClaimState.NEW
    await wait_past_lease()  # D died without finishing: its lease lapses
    claim = await store.claim(c2, "E", 1.0)
    assert claim.state is ClaimState.RESUMED and claim.started_at > 0


def _exercise(store: Any, wait_past_lease: Callable[[], Any]) -> None:
    async def run() -> None:
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


def test_redis_keys_are_scoped_by_connection(redis_url: str) -> None:
    import redis

    prefix = f"hypatos-test-{uuid.uuid4().hex[:8]}:"
    store = RedisResultStore.from_url(redis_url, ttl_s=60, prefix=prefix)

    async def run() -> None:
        await store.put(key("inv:1", connection="a:b c"), b"{}")
        await store.close()

    asyncio.run(run())
    client = redis.Redis.from_url(redis_url)
    assert [k.decode() for k in client.scan_iter(match=f"{prefix}*")] == [f"{prefix}result:a%3Ab%20c:inv:1"]
    client.delete(f"{prefix}result:a%3Ab%20c:inv:1")


def test_a_renewed_lease_outlives_its_first_term(redis_url: str) -> None:
    store = RedisResultStore.from_url(redis_url, ttl_s=60, prefix=f"hypatos-test-{uuid.uuid4().hex[:8]}:")

    async def run() -> ClaimState:
        await store.claim(key("r"), "A", 0.5)
        for _ in range(4):
            await asyncio.sleep(0.25)
            await store.renew(key("r"), "A", 0.5)
        state = (await store.claim(key("r"), "B", 0.5)).state
        await store.close()
        return state

    assert asyncio.run(run()) is ClaimState.HELD


def test_given_redis_down_then_the_guard_lets_requests_through() -> None:
    store = FallibleStoreGuard(RedisResultStore.from_url("redis://127.0.0.1:1/0", ttl_s=60))

    async def run() -> ClaimState:
        await store.put(key("r1"), b"{}")
        claimed = (await store.claim(key("r1"), "A", 1.0)).state
        await store.renew(key("r1"), "A", 1.0)
        await store.finish(key("r1"), "A", keep_started=False)
        await store.close()
        return claimed

    assert asyncio.run(run()) is ClaimState.NEW


@pytest.mark.timeout(10)
def test_expiring_many_entries_does_not_scan_the_whole_store() -> None:
    clock = FakeClock()
    store = MemoryResultStore(ttl_s=10, clock=clock)

    async def run() -> None:
        for index in range(20_000):
            await store.put(key(f"r{index}"), b"{}")
            await store.claim(key(f"r{index}"), "A", 1.0)

    asyncio.run(run())
