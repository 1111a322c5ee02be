"""The idempotency store: final results by request id, and which attempt of a request is running.

A request's ``id`` is its idempotency key.  Once a request has reached Hypatos and has a final result
(succeeded, or failed for a reason that repeating will not change), the result is stored before it
is published; a redelivered or resubmitted request with that id gets the stored result published
again instead of running again.

While a request runs, its attempt holds a *lease* (renewed while it lives, gone soon after its worker
dies), and a *started* marker records that an attempt began.  So a second delivery of the same id
can tell three cases apart (`ClaimState`):

- ``NEW``: nothing ran before; go ahead.
- ``HELD``: another attempt is running right now; wait for it (its result will be replayed).
- ``RESUMED``: an attempt started earlier and ended without a result (its worker died, or its call
  ended without an answer); an operation that creates something must look for what that attempt
  created before creating again (`tasks.creation`).

Entries expire after ``HYPATOS_RESULT_TTL_S``.  `RedisResultStore` serves a fleet; `MemoryResultStore`
is the embedded fallback for a single process (quick start, demo) and forgets on restart.
"""

from __future__ import annotations

import enum
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

import redis.asyncio as aioredis
import structlog

from worker.messages import Result
from worker.redis_scripts import EXTEND_IF_OWNER

log = structlog.get_logger(__name__)
T = TypeVar("T")


class ClaimState(enum.Enum):
    """What an attempt found when it claimed its request id."""

    NEW = "new"
    HELD = "held"
    RESUMED = "resumed"


class ResultStore(Protocol):
    """Where final results, leases and started markers live."""

    async def get(self, request_id: str) -> Result | None:
        """The stored final result for `request_id`, if any."""

    async def put(self, result: Result) -> None:
        """Store a final result; it supersedes the lease and the started marker."""

    async def claim(self, request_id: str, owner: str, lease_s: float) -> tuple[ClaimState, float]:
        """Take the lease for `owner`; returns the state and when the first attempt started (unix)."""

    async def renew(self, request_id: str, owner: str, lease_s: float) -> None:
        """Extend `owner`'s lease (a live attempt calls this periodically)."""

    async def finish(self, request_id: str, owner: str, *, keep_started: bool) -> None:
        """Drop `owner`'s lease; keep the started marker only if the attempt may have created something."""

    async def close(self) -> None:
        """Release connections."""


class MemoryResultStore:
    """A per-process store with expiry; enough for one worker process.

    Results and started markers share one time-to-live, so insertion order is expiry order:
    expiring is popping from the front, constant time per entry, never a scan.
    """

    def __init__(self, ttl_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl_s = ttl_s
        self._clock = clock
        self._results: OrderedDict[str, tuple[float, str]] = OrderedDict()
        self._started: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._leases: dict[str, tuple[float, str]] = {}

    def _expire(self) -> None:
        now = self._clock()
        for table in (self._results, self._started):
            while table and next(iter(table.values()))[0] <= now:
                table.popitem(last=False)

    async def get(self, request_id: str) -> Result | None:
        self._expire()
        entry = self._results.get(request_id)
        return Result.model_validate_json(entry[1]) if entry else None

    async def put(self, result: Result) -> None:
        self._results.pop(result.id, None)
        self._results[result.id] = (self._clock() + self._ttl_s, result.model_dump_json())
        self._started.pop(result.id, None)
        self._leases.pop(result.id, None)

    async def claim(self, request_id: str, owner: str, lease_s: float) -> tuple[ClaimState, float]:
        self._expire()
        now = self._clock()
        lease = self._leases.get(request_id)
        if lease is not None and lease[0] > now:
            return ClaimState.HELD, self._started.get(request_id, (0.0, time.time()))[1]
        self._leases[request_id] = (now + lease_s, owner)
        if request_id in self._started:
            return ClaimState.RESUMED, self._started[request_id][1]
        self._started[request_id] = (now + self._ttl_s, time.time())
        return ClaimState.NEW, self._started[request_id][1]

    async def renew(self, request_id: str, owner: str, lease_s: float) -> None:
        lease = self._leases.get(request_id)
        if lease is not None and lease[1] == owner:
            self._leases[request_id] = (self._clock() + lease_s, owner)

    async def finish(self, request_id: str, owner: str, *, keep_started: bool) -> None:
        lease = self._leases.get(request_id)
        if lease is not None and lease[1] == owner:
            del self._leases[request_id]
            if not keep_started:
                self._started.pop(request_id, None)

    async def close(self) -> None:
        return None


#: Drop the lease (and, unless told to keep it, the started marker) only if this owner holds it.
_FINISH_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  if ARGV[2] == '0' then redis.call('DEL', KEYS[2]) end
  return 1
end
return 0
"""


class RedisResultStore:
    """The fleet's store: ``<prefix>result:<id>``, ``<prefix>lease:<id>``, ``<prefix>started:<id>``."""

    def __init__(self, client: aioredis.Redis, ttl_s: float, prefix: str = "hypatos:") -> None:
        self._redis = client
        self._ttl_ms = int(ttl_s * 1000)
        self._prefix = prefix
        self._renew = client.register_script(EXTEND_IF_OWNER)
        self._finish = client.register_script(_FINISH_LUA)

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
            pipe.delete(self._key("lease", result.id), self._key("started", result.id))
            await pipe.execute()

    async def claim(self, request_id: str, owner: str, lease_s: float) -> tuple[ClaimState, float]:
        started_key = self._key("started", request_id)
        if not await self._redis.set(self._key("lease", request_id), owner, nx=True, px=int(lease_s * 1000)):
            started = await self._redis.get(started_key)
            return ClaimState.HELD, float(started or time.time())
        now = time.time()
        if await self._redis.set(started_key, repr(now), nx=True, px=self._ttl_ms):
            return ClaimState.NEW, now
        started = await self._redis.get(started_key)
        return ClaimState.RESUMED, float(started or now)

    async def renew(self, request_id: str, owner: str, lease_s: float) -> None:
        await self._renew(keys=[self._key("lease", request_id)], args=[owner, int(lease_s * 1000)])

    async def finish(self, request_id: str, owner: str, *, keep_started: bool) -> None:
        keys = [self._key("lease", request_id), self._key("started", request_id)]
        await self._finish(keys=keys, args=[owner, "1" if keep_started else "0"])

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

    async def claim(self, request_id: str, owner: str, lease_s: float) -> tuple[ClaimState, float]:
        fallback = (ClaimState.NEW, time.time())
        return await self._guard("claim", lambda: self._store.claim(request_id, owner, lease_s), fallback)

    async def renew(self, request_id: str, owner: str, lease_s: float) -> None:
        await self._guard("renew", lambda: self._store.renew(request_id, owner, lease_s), None)

    async def finish(self, request_id: str, owner: str, *, keep_started: bool) -> None:
        call = lambda: self._store.finish(request_id, owner, keep_started=keep_started)  # noqa: E731
        await self._guard("finish", call, None)

    async def close(self) -> None:
        await self._guard("close", self._store.close, None)
