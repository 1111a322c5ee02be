"""The per-process async runtime: one event loop, one aiohttp session, shared by every task.

Celery runs our task on a pool of threads.  Each task thread hands its coroutine to this runtime's
loop (`Runtime.run`) and blocks until it finishes; the loop, running in its own thread, interleaves
all of them.  So a worker process has as many operations in flight as it has pool threads, over one
connection pool and one token cache, and a request waiting on Hypatos never stops the next one from
starting.  See docs/ARCHITECTURE.md, "Execution model".
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

import aiohttp
import structlog

from worker.client import HypatosClient
from worker.connections import ConnectionRegistry
from worker.errors import ConfigError
from worker.quota import open_quota
from worker.result_store import FallibleStoreGuard, MemoryResultStore, RedisResultStore, ResultStore
from worker.retry import RetryPolicy
from worker.settings import WorkerSettings
from worker.token_cache import SharedTokenCache
from worker.tokens import TokenProvider
from worker.transport import Transport

log = structlog.get_logger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class Services:
    """What a task needs to run an operation; built once per process, inside the loop."""

    settings: WorkerSettings
    connections: ConnectionRegistry
    tokens: TokenProvider
    client: HypatosClient
    session: aiohttp.ClientSession
    transport: Transport
    results: ResultStore
    #: The in-call retry policy (also the base of broker-side backoff).
    policy: RetryPolicy

    async def close(self) -> None:
        """Close what holds connections."""
        await self.session.close()
        await self.results.close()
        await self.tokens.close()


def open_result_store(settings: WorkerSettings) -> ResultStore:
    """Redis when configured (a fleet shares it), else the per-process fallback."""
    if settings.redis_url:
        store = RedisResultStore.from_url(
            settings.redis_url, settings.result_ttl_s, prefix=settings.redis_prefix
        )
        return FallibleStoreGuard(store)
    log.warning(
        "result_store_in_memory",
        detail="idempotency holds per worker process only; set HYPATOS_REDIS_URL for a fleet",
    )
    return MemoryResultStore(settings.result_ttl_s)


def load_registry(settings: WorkerSettings) -> ConnectionRegistry:
    """The connection registry, or a `ConfigError` saying what to set."""
    if settings.connections_file is None:
        raise ConfigError("HYPATOS_CONNECTIONS_FILE is not set: name the TOML file holding the connections")
    return ConnectionRegistry(
        settings.connections_file, allow_custom_endpoints=settings.allow_custom_endpoints
    )


async def open_services(settings: WorkerSettings, connections: ConnectionRegistry) -> Services:
    """Create the session and the objects that share it; must run inside the runtime's loop."""
    session = aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=settings.http_timeout_s, connect=settings.http_connect_timeout_s),
        connector=aiohttp.TCPConnector(limit=settings.http_max_connections),
        raise_for_status=False,
    )
    transport = Transport(session)
    backoff = {
        "initial_s": settings.backoff_initial_s,
        "max_s": settings.backoff_max_s,
        "inline_wait_max_s": settings.inline_wait_max_s,
    }
    tokens = TokenProvider(
        transport,
        policy=RetryPolicy(attempts=settings.token_attempts, budget_s=settings.token_budget_s, **backoff),
        max_margin_s=settings.token_renew_margin_s,
        refusal_cooldown_s=settings.auth_refusal_cooldown_s,
        shared=(
            SharedTokenCache.from_url(settings.redis_url, prefix=f"{settings.redis_prefix}token:")
            if settings.redis_url
            else None
        ),
    )
    policy = RetryPolicy(attempts=settings.call_attempts, budget_s=settings.call_budget_s, **backoff)
    client = HypatosClient(transport, tokens, policy=policy, quota=open_quota(settings))
    results = open_result_store(settings)
    return Services(settings, connections, tokens, client, session, transport, results, policy)


class Runtime:
    """Owns the loop thread and the `Services`; started once per worker process."""

    def __init__(self, settings: WorkerSettings) -> None:
        self.settings = settings
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="hypatos-loop", daemon=True)
        self._thread.start()
        connections = load_registry(settings)
        self.services: Services = self.run(open_services(settings, connections))
        log.info("runtime_started", connections=connections.names())

    def run(self, coroutine: Coroutine[Any, Any, T], timeout_s: float | None = None) -> T:
        """Run `coroutine` on the loop and wait for it from the calling (pool) thread."""
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout_s)

    def close(self) -> None:
        """Close the session and stop the loop; requests still running are cancelled."""
        if not self._loop.is_running():
            return
        try:
            self.run(self.services.close(), timeout_s=5)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)
