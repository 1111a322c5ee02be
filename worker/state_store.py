"""A small key-value store for state that outlives one delivery of a request: journeys, shared snapshots.

Operations that wait on the broker between deliveries (``processDocument``) keep what they have done
so far here, so that the next delivery, on any worker process, goes on from there.  The store offers
a few primitives, nothing about any operation:

- *values* (`get`, `put`, `delete`): bytes under a key, kept for ``HYPATOS_RESULT_TTL_S`` after the
  last write;
- *locks* (`lock`, `unlock`): a key one owner holds until it lets go or the lock's time runs out;
- *stamped sets* (`replace_set`, `membership`): a set of members replaced as a whole, with the time it
  was taken, and a cheap "is this member in it, and how old is the set" for one member;
- *rankings* (`rank`, `unrank`, `lowest`): members with a score and a time after which they are
  forgotten unless ranked again, and the lowest score of the members still there.

Keys are given without the prefix: the store adds ``HYPATOS_REDIS_PREFIX``.  `RedisStateStore`
serves a fleet; `MemoryStateStore` serves one process and forgets on restart.  Errors of Redis are
raised as `StateStoreUnavailable`: callers decide whether to wait or go on without.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar
from urllib.parse import quote

import redis.asyncio as aioredis
import structlog

from worker.errors import ErrorCode, TransientError
from worker.redis_scripts import DELETE_IF_OWNER
from worker.settings import WorkerSettings

log = structlog.get_logger(__name__)
T = TypeVar("T")


class StateStoreUnavailable(TransientError):
    """Raised when the state store (Redis) cannot be read or written."""

    code = ErrorCode.STATE_STORE_UNAVAILABLE


def scoped_key(kind: str, connection: str, *parts: str) -> str:
    """``<kind>:<connection, escaped>:<parts...>``: keys of one connection never meet another's."""
    return ":".join([kind, quote(connection, safe=""), *parts])


@dataclass(frozen=True)
class Membership:
    """What a stamped set says about one member: when the set was taken, and whether it holds the member."""

    taken_at: float
    member: bool


class StateStore(Protocol):
    """See the module docstring."""

    async def get(self, key: str) -> bytes | None:
        """The value under `key`, or None."""

    async def put(self, key: str, value: bytes) -> None:
        """Store `value` under `key` for the store's time to live."""

    async def delete(self, key: str) -> None:
        """Forget `key`."""

    async def lock(self, key: str, owner: str, ttl_s: float) -> bool:
        """Take the lock `key` for `owner` unless someone holds it; whether it was taken."""

    async def unlock(self, key: str, owner: str) -> None:
        """Let go of the lock `key` if `owner` holds it."""

    async def replace_set(self, key: str, members: Iterable[str], taken_at: float) -> None:
        """Replace the set `key` with `members`, taken at `taken_at` (unix time)."""

    async def membership(self, key: str, member: str) -> Membership | None:
        """Whether the set `key` holds `member`, and when it was taken; None when there is no set."""

    async def rank(self, key: str, member: str, score: float, alive_until: float) -> None:
        """Add or refresh `member` with `score`; it is forgotten after `alive_until` unless ranked again."""

    async def unrank(self, key: str, member: str) -> None:
        """Remove `member` from the ranking `key`."""

    async def lowest(self, key: str, now: float) -> float | None:
        """The lowest score among the members still alive at `now`, or None when there are none."""

    async def close(self) -> None:
        """Release connections."""


class MemoryStateStore:
    """One process's store; values expire in write order (one time to live), so expiry is a pop."""

    def __init__(self, ttl_s: float, clock: Callable[[], float] = time.time) -> None:
        self._ttl_s = ttl_s
        self._clock = clock
        self._values: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._locks: dict[str, tuple[float, str]] = {}
        self._sets: dict[str, tuple[float, frozenset[str]]] = {}
        self._rankings: dict[str, dict[str, tuple[float, float]]] = {}

    def _expire(self) -> None:
        now = self._clock()
        while self._values and next(iter(self._values.values()))[0] <= now:
            self._values.popitem(last=False)

    async def get(self, key: str) -> bytes | None:
        self._expire()
        entry = self._values.get(key)
        return entry[1] if entry else None

    async def put(self, key: str, value: bytes) -> None:
        self._values.pop(key, None)
        self._values[key] = (self._clock() + self._ttl_s, value)
        self._expire()

    async def delete(self, key: str) -> None:
        self._values.pop(key, None)

    async def lock(self, key: str, owner: str, ttl_s: float) -> bool:
        now = self._clock()
        held = self._locks.get(key)
        if held is not None and held[0] > now:
            return False
        self._locks[key] = (now + ttl_s, owner)
        return True

    async def unlock(self, key: str, owner: str) -> None:
        held = self._locks.get(key)
        if held is not None and held[1] == owner:
            del self._locks[key]

    async def replace_set(self, key: str, members: Iterable[str], taken_at: float) -> None:
        self._sets[key] = (taken_at, frozenset(members))

    async def membership(self, key: str, member: str) -> Membership | None:
        entry = self._sets.get(key)
        return Membership(entry[0], member in entry[1]) if entry else None

    async def rank(self, key: str, member: str, score: float, alive_until: float) -> None:
        self._rankings.setdefault(key, {})[member] = (score, alive_until)

    async def unrank(self, key: str, member: str) -> None:
        self._rankings.get(key, {}).pop(member, None)

    async def lowest(self, key: str, now: float) -> float | None:
        ranking = self._rankings.get(key, {})
        for member in [m for m, (_, alive_until) in ranking.items() if alive_until <= now]:
            del ranking[member]
        return min((score for score, _ in ranking.values()), default=None)

    async def close(self) -> None:
        return None


class RedisStateStore:
    """The fleet's store.  A stamped set is two keys (``<key>:members``, a Redis set, and
    ``<key>:taken``), replaced together in one transaction; a ranking is two sorted sets
    (``<key>:score`` and ``<key>:alive``)."""

    def __init__(self, client: aioredis.Redis, ttl_s: float, prefix: str = "hypatos:") -> None:
        self._redis = client
        self._ttl_ms = int(ttl_s * 1000)
        self._prefix = prefix
        self._unlock = client.register_script(DELETE_IF_OWNER)

    @classmethod
    def from_url(cls, url: str, ttl_s: float, prefix: str = "hypatos:") -> RedisStateStore:
        """A store on the Redis at `url`."""
        client = aioredis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        return cls(client, ttl_s, prefix)

    @staticmethod
    async def _guard(action: str, call: Callable[[], Awaitable[T]]) -> T:
        try:
            return await call()
        except (aioredis.RedisError, OSError) as exc:
            log.warning("state_store_unavailable", action=action, error=type(exc).__name__)
            message = f"the state store (Redis) could not {action}: {type(exc).__name__}"
            raise StateStoreUnavailable(message) from None

    async def get(self, key: str) -> bytes | None:
        value = await self._guard("read", lambda: self._redis.get(self._prefix + key))
        return value if isinstance(value, bytes) else None

    async def put(self, key: str, value: bytes) -> None:
        await self._guard("write", lambda: self._redis.set(self._prefix + key, value, px=self._ttl_ms))

    async def delete(self, key: str) -> None:
        await self._guard("write", lambda: self._redis.delete(self._prefix + key))

    async def lock(self, key: str, owner: str, ttl_s: float) -> bool:
        taken = await self._guard(
            "lock", lambda: self._redis.set(self._prefix + key, owner, nx=True, px=int(ttl_s * 1000))
        )
        return bool(taken)

    async def unlock(self, key: str, owner: str) -> None:
        await self._guard("unlock", lambda: self._unlock(keys=[self._prefix + key], args=[owner]))

    async def replace_set(self, key: str, members: Iterable[str], taken_at: float) -> None:
        members_key, taken_key = f"{self._prefix}{key}:members", f"{self._prefix}{key}:taken"
        listed = list(members)

        async def replace() -> None:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.delete(members_key)
                for start in range(0, len(listed), 1000):
                    pipe.sadd(members_key, *listed[start : start + 1000])
                pipe.pexpire(members_key, self._ttl_ms)
                pipe.set(taken_key, repr(taken_at), px=self._ttl_ms)
                await pipe.execute()

        await self._guard("write", replace)

    async def membership(self, key: str, member: str) -> Membership | None:
        async def read() -> list[object]:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.get(f"{self._prefix}{key}:taken")
                pipe.sismember(f"{self._prefix}{key}:members", member)
                return list(await pipe.execute())

        taken, is_member = await self._guard("read", read)
        if not isinstance(taken, bytes):
            return None
        return Membership(float(taken), bool(is_member))

    async def rank(self, key: str, member: str, score: float, alive_until: float) -> None:
        score_key, alive_key = f"{self._prefix}{key}:score", f"{self._prefix}{key}:alive"

        async def rank() -> None:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.zadd(score_key, {member: score})
                pipe.zadd(alive_key, {member: alive_until})
                pipe.pexpire(score_key, self._ttl_ms)
                pipe.pexpire(alive_key, self._ttl_ms)
                await pipe.execute()

        await self._guard("write", rank)

    async def unrank(self, key: str, member: str) -> None:
        async def unrank() -> None:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.zrem(f"{self._prefix}{key}:score", member)
                pipe.zrem(f"{self._prefix}{key}:alive", member)
                await pipe.execute()

        await self._guard("write", unrank)

    async def lowest(self, key: str, now: float) -> float | None:
        score_key, alive_key = f"{self._prefix}{key}:score", f"{self._prefix}{key}:alive"

        async def lowest() -> list[Any]:
            expired = await self._redis.zrangebyscore(alive_key, "-inf", now)
            if expired:
                async with self._redis.pipeline(transaction=True) as pipe:
                    pipe.zrem(score_key, *expired)
                    pipe.zrem(alive_key, *expired)
                    await pipe.execute()
            return list(await self._redis.zrange(score_key, 0, 0, withscores=True))

        found = await self._guard("read", lowest)
        return float(found[0][1]) if found else None

    async def close(self) -> None:
        await self._redis.aclose()


def open_state_store(settings: WorkerSettings) -> StateStore:
    """Redis when configured (a fleet shares it), else this process's memory."""
    if settings.redis_url:
        return RedisStateStore.from_url(
            settings.redis_url, settings.result_ttl_s, prefix=settings.redis_prefix
        )
    log.warning(
        "state_store_in_memory",
        detail="processDocument journeys live in this process only; set HYPATOS_REDIS_URL for a fleet",
    )
    return MemoryStateStore(settings.result_ttl_s)
