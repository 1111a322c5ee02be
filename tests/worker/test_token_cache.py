"""The fleet-wide token cache against a real Redis: storage, invalidation, single flight, degradation.

Needs Redis (``HYPATOS_TEST_REDIS_URL``, default ``redis://127.0.0.1:6379/0``).  When it is unreachable
the tests skip with a reason, except under ``CI=true``, where they fail.  Every test uses its own key
prefix and deletes its keys afterwards.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import pytest
import redis
import redis.asyncio
from structlog.testing import capture_logs

from worker.logging import REDACTED, secret_registry
from worker.token_cache import SharedToken, SharedTokenCache

KEY = "0f" * 32  # stands in for a connection's token_key (a SHA-256 hex digest)

T = TypeVar("T")


@pytest.fixture
def prefix(redis_url: str) -> Iterator[str]:
    """A key prefix unique to one test; its keys are deleted afterwards."""
    prefix = f"test:token-cache:{uuid.uuid4().hex}:"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture
def raw(redis_url: str) -> Iterator[redis.Redis]:
    """A plain client to look at (and tamper with) what the cache stored."""
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    client.close()


@asynccontextmanager
async def _caches(url: str, prefix: str, count: int, **options: Any) -> AsyncIterator[list[SharedTokenCache]]:
    """`count` caches on separate Redis clients, as `count` worker processes would have."""
    caches = [SharedTokenCache.from_url(url, prefix=prefix, **options) for _ in range(count)]
    try:
        yield caches
    finally:
        for cache in caches:
            await cache.close()


def _run(test: Callable[[], Coroutine[Any, Any, T]]) -> T:
    return asyncio.run(test())


def _token(lifetime_s: float = 60.0, value: str | None = None) -> SharedToken:
    return SharedToken(
        value=value or f"token-{uuid.uuid4().hex}",
        expires_at_unix=time.time() + lifetime_s,
        lifetime_s=lifetime_s,
        granted_scopes=frozenset({"documents.read", "documents.write"}),
    )


def _fresh(token: SharedToken) -> bool:
    return time.time() < token.expires_at_unix - token.lifetime_s / 5


class _Fetcher:
    """A token endpoint stand-in: counts calls, takes `latency_s`, fails the first `failures` calls."""

    def __init__(self, latency_s: float = 0.2, failures: int = 0) -> None:
        self.latency_s = latency_s
        self.failures = failures
        self.calls = 0

    async def __call__(self) -> SharedToken:
        self.calls += 1
        await asyncio.sleep(self.latency_s)
        if self.calls <= self.failures:
            raise RuntimeError("token endpoint failed")
        return _token()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- storage ----------------------------------------------------------------------------------------


def test_given_a_stored_token_then_another_process_reads_it_and_hides_it_in_logs(
    redis_url: str, prefix: str, raw: redis.Redis
) -> None:
    token = _token()

    async def test() -> SharedToken | None:
        async with _caches(redis_url, prefix, 2) as (writer, reader):
            await writer.put(KEY, token)
            return await reader.get(KEY)

    assert _run(test) == token
    assert secret_registry.scrub(f"Bearer {token.value}") == f"Bearer {REDACTED}"
    assert json.loads(raw.get(f"{prefix}{KEY}")) == {
        "value": token.value,
        "expires_at_unix": token.expires_at_unix,
        "lifetime_s": 60.0,
        "granted_scopes": ["documents.read", "documents.write"],
    }
    assert 55_000 < raw.pttl(f"{prefix}{KEY}") <= 60_000
    assert not [name for name in raw.scan_iter(match=f"{prefix}*") if token.value in name]


def test_given_a_token_past_its_expiry_then_get_returns_none(
    redis_url: str, prefix: str, raw: redis.Redis
) -> None:
    async def test() -> tuple[SharedToken | None, SharedToken | None, SharedToken | None]:
        async with (
            _caches(redis_url, prefix, 1) as (cache,),
            _caches(redis_url, prefix, 1, clock=lambda: time.time() + 1) as (skewed,),
        ):
            await cache.put(KEY, _token(lifetime_s=0.3))
            before = await cache.get(KEY)
            ahead = await skewed.get(KEY)  # a host whose clock already says "expired"
            await asyncio.sleep(0.4)
            return before, ahead, await cache.get(KEY)

    before, ahead, after = _run(test)
    assert before is not None
    assert ahead is None
    assert after is None
    assert raw.exists(f"{prefix}{KEY}") == 0  # the Redis TTL removed it


def test_given_an_already_expired_token_then_put_does_not_store_it(
    redis_url: str, prefix: str, raw: redis.Redis
) -> None:
    async def test() -> None:
        async with _caches(redis_url, prefix, 1) as (cache,):
            await cache.put(KEY, _token(lifetime_s=-1))

    _run(test)
    assert raw.exists(f"{prefix}{KEY}") == 0


def test_given_a_garbled_value_then_get_ignores_it_and_fetch_once_replaces_it(
    redis_url: str, prefix: str, raw: redis.Redis
) -> None:
    raw.set(f"{prefix}{KEY}", "not json")
    fetcher = _Fetcher(latency_s=0)

    async def test() -> tuple[SharedToken | None, SharedToken, SharedToken | None]:
        async with _caches(redis_url, prefix, 1) as (cache,):
            garbled = await cache.get(KEY)
            fetched = await cache.fetch_once(KEY, fetcher, fresh=_fresh)
            return garbled, fetched, await cache.get(KEY)

    with capture_logs() as logs:
        garbled, fetched, stored = _run(test)
    assert garbled is None
    assert stored == fetched
    assert fetcher.calls == 1
    assert "token_cache_unreadable" in [entry["event"] for entry in logs]


def test_given_a_refused_token_then_invalidate_deletes_it_but_not_a_newer_one(
    redis_url: str, prefix: str
) -> None:
    old, new = _token(), _token()

    async def test() -> tuple[SharedToken | None, SharedToken | None]:
        async with _caches(redis_url, prefix, 1) as (cache,):
            await cache.put(KEY, new)
            await cache.invalidate(KEY, old.value)  # a late 401 for the previous token
            kept = await cache.get(KEY)
            await cache.invalidate(KEY, new.value)
            return kept, await cache.get(KEY)

    kept, gone = _run(test)
    assert kept == new
    assert gone is None


def test_the_repr_of_a_shared_token_hides_its_value() -> None:
    token = _token(value="eyJ-very-secret-bearer")
    assert "eyJ-very-secret-bearer" not in repr(token)
    assert "eyJ-very-secret-bearer" not in str(token)
    assert "documents.read" in repr(token)


# -- single flight ----------------------------------------------------------------------------------


def test_given_fifty_callers_in_five_processes_then_the_token_is_fetched_once(
    redis_url: str, prefix: str, raw: redis.Redis
) -> None:
    fetcher = _Fetcher(latency_s=0.2)

    async def test() -> list[SharedToken]:
        async with _caches(redis_url, prefix, 5) as caches:
            calls = [caches[i % 5].fetch_once(KEY, fetcher, fresh=_fresh) for i in range(50)]
            return await asyncio.gather(*calls)

    tokens = _run(test)
    assert fetcher.calls == 1
    assert len({t.value for t in tokens}) == 1
    assert raw.exists(f"{prefix}lock:{KEY}") == 0


def test_given_a_fresh_cached_token_then_fetch_once_reuses_it_and_a_stale_one_is_replaced(
    redis_url: str, prefix: str
) -> None:
    fetcher = _Fetcher(latency_s=0)
    cached, stale = _token(), _token(lifetime_s=60, value=f"stale-{uuid.uuid4().hex}")

    async def test() -> tuple[SharedToken, SharedToken]:
        async with _caches(redis_url, prefix, 1) as (cache,):
            await cache.put(KEY, cached)
            reused = await cache.fetch_once(KEY, fetcher, fresh=_fresh)
            await cache.put(KEY, stale)
            renewed = await cache.fetch_once(KEY, fetcher, fresh=lambda t: not t.value.startswith("stale-"))
            return reused, renewed

    reused, renewed = _run(test)
    assert reused == cached
    assert renewed.value not in (cached.value, stale.value)
    assert fetcher.calls == 1


def test_given_a_failing_fetch_then_the_lock_is_released_and_a_waiter_fetches_instead(
    redis_url: str, prefix: str, raw: redis.Redis
) -> None:
    fetcher = _Fetcher(latency_s=0.1, failures=1)

    async def test() -> tuple[list[Any], SharedToken]:
        async with _caches(redis_url, prefix, 2) as caches:
            calls = [caches[i % 2].fetch_once(KEY, fetcher, fresh=_fresh) for i in range(10)]
            results = await asyncio.gather(*calls, return_exceptions=True)
            later = await caches[0].fetch_once(KEY, fetcher, fresh=_fresh)
            return results, later

    results, later = _run(test)
    errors = [r for r in results if isinstance(r, BaseException)]
    tokens = {r.value for r in results if isinstance(r, SharedToken)}
    assert [str(e) for e in errors] == ["token endpoint failed"]
    assert tokens == {later.value}
    assert fetcher.calls == 2
    assert raw.exists(f"{prefix}lock:{KEY}") == 0


def test_given_a_single_failing_fetch_then_a_later_call_succeeds(
    redis_url: str, prefix: str, raw: redis.Redis
) -> None:
    fetcher = _Fetcher(latency_s=0, failures=1)

    async def test() -> SharedToken:
        async with _caches(redis_url, prefix, 1) as (cache,):
            with pytest.raises(RuntimeError):
                await cache.fetch_once(KEY, fetcher, fresh=_fresh)
            assert raw.exists(f"{prefix}lock:{KEY}") == 0
            return await cache.fetch_once(KEY, fetcher, fresh=_fresh)

    assert _fresh(_run(test))
    assert fetcher.calls == 2


def test_given_a_lock_left_by_a_dead_process_then_others_wait_only_until_its_ttl(
    redis_url: str, prefix: str, raw: redis.Redis
) -> None:
    raw.set(f"{prefix}lock:{KEY}", "owner-that-died", px=500)
    fetcher = _Fetcher(latency_s=0.05)

    async def test() -> list[SharedToken]:
        async with _caches(redis_url, prefix, 2) as caches:
            calls = [caches[i % 2].fetch_once(KEY, fetcher, fresh=_fresh) for i in range(10)]
            return await asyncio.gather(*calls)

    started = time.monotonic()
    tokens = _run(test)
    elapsed = time.monotonic() - started
    assert 0.4 < elapsed < 2.0
    assert fetcher.calls == 1
    assert len({t.value for t in tokens}) == 1


def test_given_a_fetch_slower_than_the_lock_ttl_then_the_holder_keeps_the_lock(
    redis_url: str, prefix: str
) -> None:
    fetcher = _Fetcher(latency_s=1.5)

    async def test() -> list[SharedToken]:
        async with _caches(redis_url, prefix, 2, lock_ttl_s=1.0) as caches:
            calls = [caches[i % 2].fetch_once(KEY, fetcher, fresh=_fresh) for i in range(10)]
            return await asyncio.gather(*calls)

    tokens = _run(test)
    assert fetcher.calls == 1
    assert len({t.value for t in tokens}) == 1


def test_given_a_lock_held_past_the_wait_deadline_then_the_caller_fetches_for_itself(
    redis_url: str, prefix: str, raw: redis.Redis
) -> None:
    raw.set(f"{prefix}lock:{KEY}", "owner-that-hangs", px=60_000)
    fetcher = _Fetcher(latency_s=0)

    async def test() -> SharedToken:
        async with _caches(redis_url, prefix, 1, lock_ttl_s=0.2) as (cache,):
            return await cache.fetch_once(KEY, fetcher, fresh=_fresh)

    started = time.monotonic()
    with capture_logs() as logs:
        token = _run(test)
    assert 0.35 < time.monotonic() - started < 2.0
    assert fetcher.calls == 1
    assert _fresh(token)
    assert "token_cache_wait_timed_out" in [entry["event"] for entry in logs]


# -- Redis unavailable ------------------------------------------------------------------------------


def test_given_redis_unreachable_then_fetch_once_fetches_directly_and_warns() -> None:
    fetcher = _Fetcher(latency_s=0)
    token = _token()

    async def test() -> tuple[SharedToken, SharedToken | None]:
        cache = SharedTokenCache.from_url(f"redis://127.0.0.1:{_closed_port()}/0")
        try:
            fetched = await cache.fetch_once(KEY, fetcher, fresh=_fresh)
            await cache.put(KEY, token)
            await cache.invalidate(KEY, token.value)
            return fetched, await cache.get(KEY)
        finally:
            await cache.close()

    with capture_logs() as logs:
        fetched, got = _run(test)
    assert _fresh(fetched)
    assert got is None
    assert fetcher.calls == 1
    warnings = [entry for entry in logs if entry["event"] == "token_cache_unavailable"]
    assert [w["operation"] for w in warnings] == ["get", "put", "invalidate", "get"]
    assert all(w["log_level"] == "warning" for w in warnings)
    assert not [entry for entry in logs if token.value in str(entry) or fetched.value in str(entry)]


def test_given_redis_stalling_after_the_fetch_then_the_fetched_token_is_still_returned(
    redis_url: str, prefix: str, raw: redis.Redis
) -> None:
    async def fetch() -> SharedToken:
        raw.client_pause(2000, all=False)  # writes (the store, the unlock) now hang past the timeout
        return _token()

    async def test() -> SharedToken:
        async with _caches(redis_url, prefix, 1, socket_timeout_s=0.3) as (cache,):
            return await cache.fetch_once(KEY, fetch, fresh=_fresh)

    try:
        with capture_logs() as logs:
            token = _run(test)
    finally:
        raw.client_unpause()
    assert _fresh(token)
    warnings = [entry["operation"] for entry in logs if entry["event"] == "token_cache_unavailable"]
    assert "put" in warnings


# -- real processes ---------------------------------------------------------------------------------


def _fleet_process(redis_url: str, prefix: str, barrier: Any) -> None:
    """One worker process: 25 concurrent callers, started together with the other processes."""
    barrier.wait(timeout=30)
    asyncio.run(_fleet_callers(redis_url, prefix))


async def _fleet_callers(redis_url: str, prefix: str) -> None:
    counter = redis.asyncio.Redis.from_url(redis_url)
    cache = SharedTokenCache.from_url(redis_url, prefix=prefix)

    async def fetch() -> SharedToken:
        number = await counter.incr(f"{prefix}fetches")
        await asyncio.sleep(0.3)
        return _token(value=f"fleet-token-{number}-{uuid.uuid4().hex}")

    try:
        tokens = await asyncio.gather(*(cache.fetch_once(KEY, fetch, fresh=_fresh) for _ in range(25)))
        await counter.sadd(f"{prefix}values", *{t.value for t in tokens})
    finally:
        await cache.close()
        await counter.aclose()


def test_given_four_processes_starting_together_then_the_fleet_fetches_once(
    redis_url: str, prefix: str, raw: redis.Redis
) -> None:
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(4)
    processes = [
        context.Process(target=_fleet_process, args=(redis_url, prefix, barrier), daemon=True)
        for _ in range(4)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=30)
    assert [p.exitcode for p in processes] == [0, 0, 0, 0]
    assert raw.get(f"{prefix}fetches") == "1"
    assert len(raw.smembers(f"{prefix}values")) == 1
