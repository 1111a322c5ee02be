"""Fleet-wide token cache: one token request per connection per token lifetime, across every worker.

`worker.tokens.TokenProvider` already makes one token request per connection per *process*.  A fleet
of N processes on M hosts would still make N requests per lifetime, all at once when the fleet starts.
With Redis configured, `SharedTokenCache.fetch_once` adds single flight across the fleet:

- a token fetched by any process is stored in Redis under ``prefix + connection.token_key`` with a Redis
  TTL that ends when the token expires, and every other process reuses it;
- when the token is missing or due for renewal, one process takes a renewal lock (``SET NX PX`` with a
  random owner value, released by a compare-and-delete script) and fetches; the others poll the cache
  with jitter until the new token appears or the lock disappears, and then start over;
- the lock has a TTL, so a holder that dies blocks nobody for longer than ``lock_ttl_s``; a live holder
  extends it while its fetch (with its retries) is still running;
- waiting is bounded (``2 * lock_ttl_s``): after that a process fetches for itself rather than fail.

Redis is an optimisation, never a dependency: when it is unreachable, slow or answers with an error,
the cache logs ``token_cache_unavailable`` and the caller's ``fetch`` runs directly, as without Redis.

Security: Redis holds live bearer tokens.  They are short-lived, and client secrets are never stored,
but anyone who can read the values can call the API as the connection until the token expires, so
Redis must be access-controlled (ACL/password, a private network or TLS via ``rediss://``).  Key names
carry only the connection's ``token_key`` (a SHA-256 digest), so listing keys, or a monitoring tool that
only shows key names, reveals no token and no secret.  Values are JSON:
``{"value", "expires_at_unix", "lifetime_s", "granted_scopes"}``.

Clocks: expiry is stored as wall-clock time (`time.time`) because processes on different hosts share it;
hosts must keep their clocks synchronised (NTP).  A skew of a few seconds is absorbed by the renewal
margin that the caller's ``fresh`` predicate applies.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import structlog
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from worker.logging import secret_registry
from worker.redis_scripts import DELETE_IF_OWNER, EXTEND_IF_OWNER

if TYPE_CHECKING:
    from redis.commands.core import AsyncScript

log = structlog.get_logger(__name__)

#: Socket timeouts for clients made by `SharedTokenCache.from_url`: a cache that cannot answer within
#: this is treated as unavailable, and the caller fetches for itself.
DEFAULT_SOCKET_TIMEOUT_S = 2.0

# Delete the token only if it is still the refused one: a 401 for an old token must not drop a newer one.
_INVALIDATE_LUA = """
local raw = redis.call('GET', KEYS[1])
if not raw then
  return 0
end
local ok, doc = pcall(cjson.decode, raw)
if ok and type(doc) == 'table' and doc['value'] == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


@dataclass(frozen=True)
class SharedToken:
    """A bearer token as shared between processes; expiry is wall-clock time so other hosts can use it."""

    value: str = field(repr=False)
    expires_at_unix: float
    lifetime_s: float
    granted_scopes: frozenset[str] = frozenset()

    def __repr__(self) -> str:
        scopes = sorted(self.granted_scopes)
        return f"<SharedToken expires_at_unix={self.expires_at_unix:.0f} scopes={scopes}>"

    def to_json(self) -> str:
        """The stored form; scopes sorted so equal tokens serialise identically."""
        return json.dumps(
            {
                "value": self.value,
                "expires_at_unix": self.expires_at_unix,
                "lifetime_s": self.lifetime_s,
                "granted_scopes": sorted(self.granted_scopes),
            }
        )

    @classmethod
    def from_json(cls, raw: str | bytes) -> SharedToken:
        """Parse the stored form; `ValueError` for anything else (another writer, a corrupted value)."""
        try:
            doc = json.loads(raw)
            value, scopes = doc["value"], doc.get("granted_scopes", [])
            if not isinstance(value, str) or not value:
                raise ValueError("value is not a non-empty string")
            if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
                raise ValueError("granted_scopes is not a list of strings")
            return cls(
                value=value,
                expires_at_unix=float(doc["expires_at_unix"]),
                lifetime_s=float(doc["lifetime_s"]),
                granted_scopes=frozenset(scopes),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a stored token ({type(exc).__name__}: {exc})") from None


class _CacheUnavailable(Exception):
    """A Redis call failed; callers degrade to working without the cache."""

    def __init__(self, operation: str, cause: BaseException) -> None:
        super().__init__(operation)
        self.operation = operation
        self.cause = cause


@contextmanager
def _redis_call(operation: str) -> Iterator[None]:
    """Turn any Redis failure into `_CacheUnavailable`, so it cannot be confused with a `fetch` error.

    ``OSError`` covers socket errors and timeouts that a client may let through unwrapped.
    """
    try:
        yield
    except (RedisError, OSError) as exc:
        raise _CacheUnavailable(operation, exc) from exc


def _warn_unavailable(exc: _CacheUnavailable) -> None:
    """Log a Redis failure: the error's type and message only (they carry no token or secret)."""
    log.warning(
        "token_cache_unavailable",
        operation=exc.operation,
        error=f"{type(exc.cause).__name__}: {exc.cause}",
    )


class SharedTokenCache:
    """Fleet-wide token cache and renewal lock in Redis; see the module docstring for the protocol.

    `clock` is the wall clock used for token expiry (injectable for tests); waiting deadlines use the
    monotonic clock so a wall-clock jump cannot stretch them.  The cache owns `redis_client`: `close`
    closes it.
    """

    def __init__(
        self,
        redis_client: Redis,
        *,
        prefix: str = "hypatos:token:",
        lock_ttl_s: float = 30.0,
        poll_interval_s: float = 0.05,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        if lock_ttl_s <= 0 or poll_interval_s <= 0:
            raise ValueError("lock_ttl_s and poll_interval_s must be positive")
        self._redis = redis_client
        self._prefix = prefix
        self._lock_ttl_s = lock_ttl_s
        self._lock_ttl_ms = max(1, int(lock_ttl_s * 1000))
        self._poll_interval_s = poll_interval_s
        self._wait_s = lock_ttl_s * 2
        self._clock = clock
        self._sleep = sleep
        self._release_script: AsyncScript = redis_client.register_script(DELETE_IF_OWNER)
        self._extend_script: AsyncScript = redis_client.register_script(EXTEND_IF_OWNER)
        self._invalidate_script: AsyncScript = redis_client.register_script(_INVALIDATE_LUA)

    @classmethod
    def from_url(
        cls, url: str, *, socket_timeout_s: float = DEFAULT_SOCKET_TIMEOUT_S, **kwargs: Any
    ) -> SharedTokenCache:
        """A cache on a new client for `url` (``redis://`` or ``rediss://``), with short timeouts.

        One immediate retry covers a pooled connection that Redis closed (a restart); more would only
        delay the fallback when Redis is really gone.  `kwargs` go to the constructor.
        """
        client = Redis.from_url(
            url,
            socket_timeout=socket_timeout_s,
            socket_connect_timeout=socket_timeout_s,
            retry=Retry(NoBackoff(), 1),
        )
        return cls(client, **kwargs)

    def _token_key(self, key: str) -> str:
        return f"{self._prefix}{key}"

    def _lock_key(self, key: str) -> str:
        return f"{self._prefix}lock:{key}"

    # -- plain cache operations: they never raise for Redis failures ---------------------------------

    async def get(self, key: str) -> SharedToken | None:
        """The stored token for `key`; None when absent, expired, unreadable or Redis is unavailable."""
        try:
            return await self._read(key)
        except _CacheUnavailable as exc:
            _warn_unavailable(exc)
            return None

    async def put(self, key: str, token: SharedToken) -> None:
        """Store `token` until it expires (Redis drops it then); an expired token is not stored."""
        try:
            await self._write(key, token)
        except _CacheUnavailable as exc:
            _warn_unavailable(exc)

    async def invalidate(self, key: str, value: str) -> None:
        """Forget the stored token after the API refused it, unless a newer token has replaced it."""
        try:
            with _redis_call("invalidate"):
                await self._invalidate_script(keys=[self._token_key(key)], args=[value])
        except _CacheUnavailable as exc:
            _warn_unavailable(exc)

    async def close(self) -> None:
        """Close the Redis client and its connections."""
        closer = getattr(self._redis, "aclose", None) or self._redis.close
        await closer()

    # -- fleet single flight -------------------------------------------------------------------------

    async def fetch_once(
        self,
        key: str,
        fetch: Callable[[], Awaitable[SharedToken]],
        *,
        fresh: Callable[[SharedToken], bool],
    ) -> SharedToken:
        """A token for `key` for which `fresh` holds, fetched by at most one process of the fleet at a time.

        Errors from `fetch` propagate unchanged (the lock is released first, so another process can
        try).  Redis failures do not: the caller fetches for itself, as it would without Redis.
        """
        try:
            return await self._single_flight(key, fetch, fresh)
        except _CacheUnavailable as exc:
            _warn_unavailable(exc)
            return await fetch()

    async def _single_flight(
        self,
        key: str,
        fetch: Callable[[], Awaitable[SharedToken]],
        fresh: Callable[[SharedToken], bool],
    ) -> SharedToken:
        """Reuse, or win the lock and fetch, or wait for the winner; fetch unlocked past the deadline."""
        deadline = time.monotonic() + self._wait_s
        while time.monotonic() < deadline:
            token = await self._read(key)
            if token is not None and fresh(token):
                return token
            owner = await self._try_lock(key)
            if owner is not None:
                return await self._fetch_as_owner(key, owner, fetch)
            token = await self._wait_for_owner(key, fresh, deadline)
            if token is not None:
                return token
        log.warning("token_cache_wait_timed_out", waited_s=self._wait_s)
        token = await fetch()
        await self.put(key, token)
        return token

    async def _fetch_as_owner(
        self, key: str, owner: str, fetch: Callable[[], Awaitable[SharedToken]]
    ) -> SharedToken:
        """Fetch and store while holding the lock; store before releasing, so waiters find the token.

        Nothing after a successful `fetch` may raise for Redis: a token in hand is never thrown away.
        """
        keeper = asyncio.create_task(self._keep_lock(key, owner))
        try:
            token = await fetch()
            await self.put(key, token)
            return token
        finally:
            keeper.cancel()
            await self._release(key, owner)

    async def _wait_for_owner(
        self, key: str, fresh: Callable[[SharedToken], bool], deadline: float
    ) -> SharedToken | None:
        """Poll until the owner's token appears (returned) or its lock is gone (None: start over).

        The jitter keeps a fleet that started together from polling in lock step.
        """
        while time.monotonic() < deadline:
            await self._sleep(self._poll_interval_s * random.uniform(0.5, 1.5))
            with _redis_call("poll"):
                raw, lock = await self._redis.mget([self._token_key(key), self._lock_key(key)])
            token = self._decode(raw)
            if token is not None and fresh(token):
                return token
            if lock is None:
                return None
        return None

    # -- Redis primitives ----------------------------------------------------------------------------

    async def _read(self, key: str) -> SharedToken | None:
        with _redis_call("get"):
            raw = await self._redis.get(self._token_key(key))
        return self._decode(raw)

    def _decode(self, raw: str | bytes | None) -> SharedToken | None:
        """A usable token from a stored value; registers it as a secret so this process's logs hide it."""
        if raw is None:
            return None
        try:
            token = SharedToken.from_json(raw)
        except ValueError as exc:
            log.warning("token_cache_unreadable", error=str(exc))
            return None
        if self._clock() >= token.expires_at_unix:
            return None
        secret_registry.add(token.value)
        return token

    async def _write(self, key: str, token: SharedToken) -> None:
        ttl_ms = int((token.expires_at_unix - self._clock()) * 1000)
        if ttl_ms <= 0:
            return
        with _redis_call("put"):
            await self._redis.set(self._token_key(key), token.to_json(), px=ttl_ms)

    async def _try_lock(self, key: str) -> str | None:
        """Take the renewal lock; the random owner value lets only this holder release or extend it."""
        owner = uuid.uuid4().hex
        with _redis_call("lock"):
            taken = await self._redis.set(self._lock_key(key), owner, nx=True, px=self._lock_ttl_ms)
        return owner if taken else None

    async def _keep_lock(self, key: str, owner: str) -> None:
        """Extend the lock while a fetch (with its retries) outlasts it; stop once ownership is lost.

        A real timer, not the injectable `sleep`: a fake sleep would turn this into a busy loop.
        """
        while True:
            await asyncio.sleep(self._lock_ttl_s / 3)
            try:
                with _redis_call("extend_lock"):
                    still_owner = await self._extend_script(
                        keys=[self._lock_key(key)], args=[owner, self._lock_ttl_ms]
                    )
            except _CacheUnavailable as exc:
                _warn_unavailable(exc)
                return
            if not still_owner:
                return

    async def _release(self, key: str, owner: str) -> None:
        """Release the lock if still ours; on failure its TTL releases it."""
        try:
            with _redis_call("unlock"):
                await self._release_script(keys=[self._lock_key(key)], args=[owner])
        except _CacheUnavailable as exc:
            _warn_unavailable(exc)
