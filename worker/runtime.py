"""The per-process async runtime: one event loop in its own thread, running the request path.

The loop holds the process's one aiohttp session, token provider, connection registry and result
store (`Services`), and the request consumer (`worker.consumer`), which takes requests from the broker
and runs each one as a task on this loop: up to ``HYPATOS_CONCURRENCY`` requests are in flight at once,
over one HTTP connection pool and one token cache, and a request waiting on Hypatos never stops the
next one from starting.  Other threads (Celery's) reach the loop only through `Runtime.run`.  See
docs/ARCHITECTURE.md, "Execution model".
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import threading
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

import aiohttp
import structlog

from worker.amqp import broker_user
from worker.client import HypatosClient
from worker.connections import ConnectionRegistry
from worker.consumer import RequestConsumer, RequestHandler
from worker.errors import ConfigError
from worker.leases import LeaseKeeper
from worker.quota import FleetQuota, open_quota
from worker.result_store import FallibleStoreGuard, MemoryResultStore, RedisResultStore, ResultStore
from worker.retry import RetryPolicy
from worker.settings import WorkerSettings
from worker.state_store import StateStore, open_state_store
from worker.task_events import TaskEvents
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
    leases: LeaseKeeper
    quota: FleetQuota
    #: The in-call retry policy (also the base of broker-side backoff).
    policy: RetryPolicy
    #: State that outlives one delivery (``processDocument`` journeys), `worker.state_store`.
    state: StateStore

    async def close(self) -> None:
        """Close what holds connections."""
        await self.leases.close()
        await self.quota.close()
        await self.session.close()
        await self.results.close()
        await self.state.close()
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
    quota = open_quota(settings)
    client = HypatosClient(transport, tokens, policy=policy, quota=quota)
    results = open_result_store(settings)
    leases = LeaseKeeper(results, settings.claim_lease_s)
    state = open_state_store(settings)
    return Services(
        settings, connections, tokens, client, session, transport, results, leases, quota, policy, state
    )


#: The garbage collector's first-generation threshold in a worker process (Python's default: 700).
#: A request allocates a few hundred container objects (coroutines, dicts, futures, pydantic models);
#: at the default the collector ran about every other request and took a fifth of the CPU per request
#: (measured: 110 us of 590 us); at this threshold it takes about 2 us, for a few MB more memory.
GC_GEN0_THRESHOLD = 20_000


def tune_garbage_collector() -> None:
    """Collect less often, and leave the objects of start-up (modules, settings, sessions) out of it."""
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GC_GEN0_THRESHOLD, max(gen1, 20), gen2)


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's loop (libuv: cheaper I/O than the standard loop) when installed, else asyncio's."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - a platform without uvloop wheels
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


#: Builds the request handler once the services exist (the composition root passes it in).
HandlerFactory = Callable[[Services], RequestHandler]


class Runtime:
    """Owns the loop thread, the `Services` and the request consumer; one per worker process."""

    def __init__(self, settings: WorkerSettings) -> None:
        self.settings = settings
        self._loop = new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="hypatos-loop", daemon=True)
        self._thread.start()
        connections = load_registry(settings)
        self.services: Services = self.run(open_services(settings, connections))
        self.consumer: RequestConsumer | None = None
        self._consuming: concurrent.futures.Future[None] | None = None
        tune_garbage_collector()
        log.info("runtime_started", connections=connections.names())

    def run(self, coroutine: Coroutine[Any, Any, T], timeout_s: float | None = None) -> T:
        """Run `coroutine` on the loop and wait for it from the calling thread."""
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout_s)

    def start_consuming(self, handler_factory: HandlerFactory, events: TaskEvents | None = None) -> None:
        """Start taking requests from the broker on the loop (reporting them as task events if given)."""
        self.consumer = RequestConsumer(
            self.settings,
            handler_factory(self.services),
            workers_user=broker_user(self.settings.broker_url),
            events=events,
        )
        self._consuming = asyncio.run_coroutine_threadsafe(self.consumer.run(), self._loop)

    def stop_consuming(self, timeout_s: float) -> bool:
        """Stop taking requests; let those in flight finish within `timeout_s`; whether they all did."""
        if self.consumer is None:
            return True
        finished = self.run(self.consumer.stop(timeout_s), timeout_s=timeout_s + 10)
        if self._consuming is not None:
            try:
                self._consuming.result(timeout=10)
            except Exception:  # the consumer logged why it ended; stopping goes on
                log.warning("consumer_ended_with_error", exc_info=True)
        return finished

    def status(self) -> dict[str, Any]:
        """What health checks ask: is the request queue consumed, and how busy is the process."""
        consumer = self.consumer
        return {
            "request_queue": self.settings.request_queue,
            "consuming": bool(consumer and consumer.consuming),
            "in_flight": consumer.in_flight if consumer else 0,
            "concurrency": self.settings.concurrency,
        }

    def close(self) -> None:
        """Close the session and stop the loop; requests still running are cancelled."""
        if not self._loop.is_running():
            return
        try:
            self.run(self.services.close(), timeout_s=5)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)
