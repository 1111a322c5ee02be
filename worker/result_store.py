"""The idempotency store: final results by request id, and claims on creating operations.

A request's ``id`` is its idempotency key.  Once a request has a final result (succeeded, or failed
for a reason that repeating will not change), the result is stored before it is published; a
redelivered or resubmitted request with that id gets the stored result published again instead of
running again.  Failures marked ``retryable`` are not stored: resubmitting such a request runs it.

Operations that create something (``uploadFile``, ``processFileIntoDocument``, ``projectsCreate``)
also take a *claim* just before their API call.  A claim without a result means an earlier attempt
was interrupted after the call may have reached Hypatos; the executor then reconciles instead of
creating a second time (see `tasks.reconcile`).

Entries expire after ``HYPATOS_RESULT_TTL_S``.  `RedisResultStore` serves a fleet; `MemoryResultStore`
is the embedded fallback for a single process (quick start, demo) and forgets on restart.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

import redis.asyncio as aioredis
import structlog

from worker.messages import Result

log = structlog.get_logger(__name__)
T = TypeVar("T")


class ResultStore(Protocol):
    """Where final results and creation claims live."""

    async def get(self, request_id: str) -> Result | None:
        """The stored final result for `request_id`, if any."""

    async def put(self, result: Result) -> None:
        """Store a final result (and drop the claim, which it supersedes)."""

    async def claim(self, request_id: str) -> bool:
        """Take the creation claim; False when an earlier attempt already holds it."""

    async def release(self, request_id: str) -> None:
        """Drop the claim: the attempt ended and certainly created nothing."""

    async def close(self) -> None:
        """Release connections."""


class MemoryResultStore:
    """A per-process store with expiry; enough for one worker process.

    Entries share one time-to-live, so insertion order is expiry order: expiring is popping from the
    front, constant time per entry, never a scan.
    """

    def __init__(self, ttl_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl_s = ttl_s
        self._clock = clock
        self._results: OrderedDict[str, tuple[float, str]] = OrderedDict()
        self._claims: OrderedDict[str, tuple[float, str]] = OrderedDict()

    def _expire(self) -> None:
        now = self._clock()
        for table in (self._results, self._claims):
            while table and next(iter(table.values()))[0] <= now:
                table.popitem(last=False)

    def _set(self, table: OrderedDict[str, tuple[float, str]], key: str, value: str) -> None:
        table.pop(key, None)
        table[key] = (self._clock() + self._ttl_s, value)

    async def get(self, request_id: str) -> Result | None:
        self._expire()
        entry = self._results.get(request_id)
        return Result.model_validate_json(entry[1]) if entry else None

    async def put(self, result: Result) -> None:
        self._set(self._results, result.id, result.model_dump_json())
        self._claims.pop(result.id, None)

    async def claim(self, request_id: str) -> bool:
        self._expire()
        if request_id in self._claims:
            return False
        self._set(self._claims, request_id, "")
        return True

    async def release(self, request_id: str) -> None:
        self._claims.pop(request_id, None)

    async def close(self) -> None:
        return None


class RedisResultStore:
    """The fleet's store in Redis: ``<prefix>result:<id>`` and ``<prefix>claim:<id>``, both with a TTL."""

    def __init__(self, client: aioredis.Redis, ttl_s: float, prefix: str = "hypatos:") -> None:
        self._redis = client
        self._ttl_ms = int(ttl_s * 1000)
        self._prefix = prefix

    @classmethod
    def from_url(cls, url: str, ttl_s: float, prefix: str = "hypatos:") -> RedisResultStore:
        """A store on the Redis at `url`."""
        client = aioredis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        return cls(client, ttl_s, prefix)

    def _key(self, kind: str, request_id: str) -> str:
        return f"{self._prefix}{kind}:{request_id}"

    async def get(self, request_id: str) -> Result | None:
        raw = await self._redis.get(self._key("result", request_id))
        return Result.model_validate_json(raw) if raw else None

    async def put(self, result: Result) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(self._key("result", result.id), result.model_dump_json(), px=self._ttl_ms)
            pipe.delete(self._key("claim", result.id))
            await pipe.execute()

    async def claim(self, request_id: str) -> bool:
        return bool(await self._redis.set(self._key("claim", request_id), "1", nx=True, px=self._ttl_ms))

    async def release(self, request_id: str) -> None:
        await self._redis.delete(self._key("claim", request_id))

    async def close(self) -> None:
        await self._redis.aclose()


class FallibleStoreGuard:
    """Keeps requests flowing when the store is unreachable: logs and carries on without it.

    Availability wins over deduplication here: while Redis is down, requests still run and results
    are still published; only redelivered requests may run again.  `result_store_unavailable` in the
    logs says when that window was open.
    """

    def __init__(self, store: ResultStore) -> None:
        self._store = store

    @staticmethod
    async def _guard(action: str, call: Callable[[], Awaitable[T]], fallback: T) -> T:
        try:
            return await call()
        except (aioredis.RedisError, OSError) as exc:
            log.error("result_store_unavailable", action=action, error=type(exc).__name__)
            return fallback

    async def get(self, request_id: str) -> Result | None:
        return await self._guard("get", lambda: self._store.get(request_id), None)

    async def put(self, result: Result) -> None:
        await self._guard("put", lambda: self._store.put(result), None)

    async def claim(self, request_id: str) -> bool:
        return await self._guard("claim", lambda: self._store.claim(request_id), True)

    async def release(self, request_id: str) -> None:
        await self._guard("release", lambda: self._store.release(request_id), None)

    async def close(self) -> None:
        await self._guard("close", self._store.close, None)
