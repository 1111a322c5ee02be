"""The idempotency stores: results and claims, with expiry, in memory and in Redis."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from worker.messages import Result
from worker.result_store import FallibleStoreGuard, MemoryResultStore, RedisResultStore


def _result(request_id: str) -> Result:
    return Result(id=request_id, connection="c", operation="documentsGetById", status="succeeded",
                  http_status=200, data={"id": "d"}, error=None, attempts=1, duration_ms=1.0)  # fmt: skip


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _exercise(store: Any, advance: Callable[[float], None] | None = None) -> None:
    async def run() -> None:
        assert await store.get("r1") is None
        await store.put(_result("r1"))
        assert (await store.get("r1")).data == {"id": "d"}
        assert await store.claim("c1") is True
        assert await store.claim("c1") is False
        await store.release("c1")
        assert await store.claim("c1") is True
        await store.put(_result("c1"))  # a result supersedes the claim
        assert await store.claim("c1") is True
        if advance is not None:
            advance(11)
            assert await store.get("r1") is None
            assert await store.claim("c1") is True
        await store.close()

    asyncio.run(run())


def test_the_memory_store_keeps_results_and_claims_until_they_expire() -> None:
    clock = FakeClock()
    _exercise(
        MemoryResultStore(ttl_s=10, clock=clock), advance=lambda s: setattr(clock, "now", clock.now + s)
    )


def test_the_redis_store_keeps_results_and_claims(redis_url: str) -> None:
    prefix = f"hypatos-test-{uuid.uuid4().hex[:8]}:"
    _exercise(RedisResultStore.from_url(redis_url, ttl_s=60, prefix=prefix))


def test_given_redis_down_then_the_guard_lets_requests_through() -> None:
    store = FallibleStoreGuard(RedisResultStore.from_url("redis://127.0.0.1:1/0", ttl_s=60))

    async def run() -> tuple[Any, bool]:
        got = await store.get("r1")
        await store.put(_result("r1"))
        claimed = await store.claim("r1")
        await store.release("r1")
        await store.close()
        return got, claimed

    assert asyncio.run(run()) == (None, True)


@pytest.mark.timeout(10)
def test_expiring_many_entries_does_not_scan_the_whole_store() -> None:
    clock = FakeClock()
    store = MemoryResultStore(ttl_s=10, clock=clock)

    async def run() -> None:
        for index in range(20_000):
            await store.put(_result(f"r{index}"))
            await store.get(f"r{index}")

    asyncio.run(run())
