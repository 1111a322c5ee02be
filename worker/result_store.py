"""The idempotency store: final results by request, and which attempt of a request is running.

A request is known by its `RequestKey`: the connection it names, its ``id`` (the caller's
idempotency key) and a fingerprint of everything else it asks for (operation, parameters, body,
file, options).  Entries are scoped by connection, so two connections never see each other's ids.

Once a request has reached Hypatos and has a final result (succeeded, or failed for a reason that
repeating will not change), the serialized result is stored before it is published; the same request
coming again (redelivered or resubmitted: same connection, id and fingerprint) gets the stored result
published again instead of running again.  A *different* request reusing the id gets `CONFLICT` and
runs nothing.

While a request runs, its attempt holds a *lease* (renewed while it lives, gone soon after its worker
dies), and a *started* marker records that an attempt began (with the fingerprint).  So a delivery of
a request can tell the cases apart (`ClaimState`):

- ``NEW``: nothing ran before; go ahead.
- ``STORED``: a final result is stored: publish it again.
- ``HELD``: another attempt is running right now; wait for it (its result will be replayed).
- ``RESUMED``: an attempt started earlier and ended without a result (its worker died, or its call
  ended without an answer); an operation that creates something must look for what that attempt
  created before creating again (`tasks.creation`).
- ``CONFLICT``: the id is taken by a different request on this connection.

Entries expire after ``HYPATOS_RESULT_TTL_S``.  `RedisResultStore` serves a fleet (one round trip to
claim, one to store); `MemoryResultStore` is the embedded fallback for a single process (quick start,
demo) and forgets on restart.
"""

from __future__ import annotations

import enum
import functools
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar
from urllib.parse import quote

import redis.asyncio as aioredis
import structlog

from worker.redis_scripts import EXTEND_IF_OWNER

log = structlog.get_logger(__name__)
T = TypeVar("T")

#: Length of a fingerprint (hex sha256); stored values start with it.
FINGERPRINT_LENGTH = 64


class ClaimState(enum.Enum):
    """What an attempt found when it claimed its request; see the module docstring."""

    NEW = "new"
    STORED = "stored"
    HELD = "held"
    RESUMED = "resumed"
    CONFLICT = "conflict"


@dataclass(frozen=True)
class RequestKey:
    """Which request this is: the connection, the caller's id and the fingerprint of the rest."""

    connection: str
    id: str
    fingerprint: str

    @functools.cached_property
    def scoped_id(self) -> str:
        """The id within its connection's namespace (the connection name is escaped: it has no ``:``)."""
        return f"{quote(self.connection, safe='')}:{self.id}"


@dataclass(frozen=True)
class Claim:
    """The claim's outcome; `stored` holds the serialized result when the state is ``STORED``."""

    state: ClaimState
    #: When the first attempt of this request started (unix time).
    started_at: float
    stored: bytes | None = None


class ResultStore(Protocol):
    """Where final results, leases and started markers live."""

    async def claim(self, key: RequestKey, owner: str, lease_s: float) -> Claim:
        """Look up the stored result, else take the lease for `owner`; see `ClaimState`."""

    async def renew(self, key: RequestKey, owner: str, lease_s: float) -> None:
        """Extend `owner`'s lease (a live attempt calls this periodically)."""

    async def put(self, key: RequestKey, result: bytes) -> None:
        """Store a final serialized result; it supersedes the lease and the started marker."""

    async def finish(self, key: RequestKey, owner: str, *, keep_started: bool) -> None:
        """Drop `owner`'s lease; keep the started marker only if the attempt may have created something."""

    async def close(self) -> None:
        """Release connections."""


def _split(value: bytes) -> tuple[str, bytes]:
    return value[:FINGERPRINT_LENGTH].decode("ascii", errors="replace"), value[FINGERPRINT_LENGTH:]


def _started_at(marker: bytes | None, default: float) -> float:
    if not marker:
        return default
    try:
        return float(_split(marker)[1])
    except ValueError:
        return default


def claim_from(
    key: RequestKey, stored: bytes | None, marker: bytes | None, *, lease_taken: bool, now: float
) -> Claim:
    """Decide the claim from what the store holds (shared by both stores, so they agree)."""
    if stored is not None:
        fingerprint, body = _split(stored)
        if fingerprint != key.fingerprint:
            return Claim(ClaimState.CONFLICT, now)
        return Claim(ClaimState.STORED, now, body)
    started_at = _started_at(marker, now)
    if marker is not None and _split(marker)[0] != key.fingerprint:
        return Claim(ClaimState.CONFLICT, started_at)
    if not lease_taken:
        return Claim(ClaimState.HELD, started_at)
    return Claim(ClaimState.RESUMED if marker is not None else ClaimState.NEW, started_at)


class MemoryResultStore:
    """A per-process store with expiry; enough for one worker process.

    Results and started markers share one time-to-live, so insertion order is expiry order:
    expiring is popping from the front, constant time per entry, never a scan.
    """

    def __init__(self, ttl_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl_s = ttl_s
        self._clock = clock
        self._results: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._started: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._leases: dict[str, tuple[float, str]] = {}

    def _expire(self) -> None:
        now = self._clock()
        for table in (self._results, self._started):
            while table and next(iter(table.values()))[0] <= now:
                table.popitem(last=False)

    async def claim(self, key: RequestKey, owner: str, lease_s: float) -> Claim:
        self._expire()
        scoped, now = key.scoped_id, self._clock()
        stored = self._results.get(scoped)
        marker = self._started.get(scoped)
        lease = self._leases.get(scoped)
        free = stored is None and (lease is None or lease[0] <= now)
        claim = claim_from(key, stored and stored[1], marker and marker[1], lease_taken=free, now=time.time())
        if free and claim.state in (ClaimState.NEW, ClaimState.RESUMED):
            self._leases[scoped] = (now + lease_s, owner)
            if marker is None:
                value = key.fingerprint.encode() + repr(claim.started_at).encode()
                self._started[scoped] = (now + self._ttl_s, value)
        return claim

    async def renew(self, key: RequestKey, owner: str, lease_s: float) -> None:
        lease = self._leases.get(key.scoped_id)
        if lease is not None and lease[1] == owner:
            self._leases[key.scoped_id] = (self._clock() + lease_s, owner)

    async def put(self, key: RequestKey, result: bytes) -> None:
        scoped = key.scoped_id
        self._results.pop(scoped, None)
        self._results[scoped] = (self._clock() + self._ttl_s, key.fingerprint.encode() + result)
        self._started.pop(scoped, None)
        self._leases.pop(scoped, None)

    async def finish(self, key: RequestKey, owner: str, *, keep_started: bool) -> None:
        lease = self._leases.get(key.scoped_id)
        if lease is not None and lease[1] == owner:
            del self._leases[key.scoped_id]
            if not keep_started:
                self._started.pop(key.scoped_id, None)

    async def close(self) -> None:
        return None


#: Claim in one round trip: the stored result if any; else, unless the started marker belongs to a
#: different request, take the lease and (when new) write the started marker.
_CLAIM_LUA = """
local stored = redis.call('GET', KEYS[1])
if stored then return {stored, false, 0} end
local marker = redis.call('GET', KEYS[3])
if marker and string.sub(marker, 1, 64) ~= ARGV[3] then return {false, marker, 0} end
if not redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return {false, marker, 0} end
if not marker then redis.call('SET', KEYS[3], ARGV[3] .. ARGV[4], 'PX', ARGV[5]) end
return {false, marker, 1}
"""

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
    """The fleet's store: ``<prefix>{result,lease,started}:<connection>:<id>``."""

    def __init__(self, client: aioredis.Redis, ttl_s: float, prefix: str = "hypatos:") -> None:
        self._redis = client
        self._ttl_ms = int(ttl_s * 1000)
        self._prefix = prefix
        self._claim = client.register_script(_CLAIM_LUA)
        self._renew = client.register_script(EXTEND_IF_OWNER)
        self._finish = client.register_script(_FINISH_LUA)

    @classmethod
    def from_url(cls, url: str, ttl_s: float, prefix: str = "hypatos:") -> RedisResultStore:
        """A store on the Redis at `url`."""
        client = aioredis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        return cls(client, ttl_s, prefix)

    def _keys(self, key: RequestKey) -> list[str]:
        scoped = key.scoped_id
        return [f"{self._prefix}{kind}:{scoped}" for kind in ("result", "lease", "started")]

    async def claim(self, key: RequestKey, owner: str, lease_s: float) -> Claim:
        now = time.time()
        args: list[str | int] = [owner, int(lease_s * 1000), key.fingerprint, repr(now), self._ttl_ms]
        stored, marker, taken = await self._claim(keys=self._keys(key), args=args)
        return claim_from(key, stored or None, marker or None, lease_taken=bool(taken), now=now)

    async def renew(self, key: RequestKey, owner: str, lease_s: float) -> None:
        await self._renew(keys=[self._keys(key)[1]], args=[owner, int(lease_s * 1000)])

    async def put(self, key: RequestKey, result: bytes) -> None:
        result_key, lease_key, started_key = self._keys(key)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(result_key, key.fingerprint.encode() + result, px=self._ttl_ms)
            pipe.delete(lease_key, started_key)
            await pipe.execute()

    async def finish(self, key: RequestKey, owner: str, *, keep_started: bool) -> None:
        _, lease_key, started_key = self._keys(key)
        await self._finish(keys=[lease_key, started_key], args=[owner, "1" if keep_started else "0"])

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

    async def claim(self, key: RequestKey, owner: str, lease_s: float) -> Claim:
        fallback = Claim(ClaimState.NEW, time.time())
        return await self._guard("claim", lambda: self._store.claim(key, owner, lease_s), fallback)

    async def renew(self, key: RequestKey, owner: str, lease_s: float) -> None:
        await self._guard("renew", lambda: self._store.renew(key, owner, lease_s), None)

    async def put(self, key: RequestKey, result: bytes) -> None:
        await self._guard("put", lambda: self._store.put(key, result), None)

    async def finish(self, key: RequestKey, owner: str, *, keep_started: bool) -> None:
        call = lambda: self._store.finish(key, owner, keep_started=keep_started)  # noqa: E731
        await self._guard("finish", call, None)

    async def close(self) -> None:
        await self._guard("close", self._store.close, None)
