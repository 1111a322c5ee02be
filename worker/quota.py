"""A fleet shares one request quota per connection: every API call takes a slot first.

A Hypatos quota belongs to an API client, not to a worker process.  `FleetQuota.acquire` runs before
every API call (not token requests: the token endpoint has its own quota) and takes the call's slot
from the connection's schedule (`worker.quota_schedule`: GCRA, in Redis for the fleet, else in this
process's memory):

- the rate is the connection's ``rate_limit_per_s`` (with ``rate_limit_burst``); without one, the
  rate the API advertises in ``x-ratelimit-limit`` (``10, 10;w=1`` is 10 calls per 1 s window),
  less a margin for calls delayed in transit (`usable_rate`), learned from responses
  (`FleetQuota.observe`) and shared through Redis (``HYPATOS_QUOTA_LEARN=0`` turns learning off).
  Until a rate is known, a few calls go out to learn it while the others wait for their answer; a
  2xx answer without the header means no limit (asked again after a minute);
- a 429 holds every call of the connection until its ``x-ratelimit-reset``, fleet-wide;
- a slot due within ``HYPATOS_INLINE_WAIT_MAX_S`` is waited for here, by at most `max_waiting`
  requests of a connection per process at a time (requests already in progress, e.g. paging, wait
  regardless), so a connection at its limit never holds the capacity other connections need.  A
  process that wakes up well after its slot (an overloaded host) takes a later one rather than send
  a bunch of late calls at once;
- otherwise `QuotaWait` (a `TransientError`, code ``rate_limited``) sends the request back to the
  broker until its return slot: deferrals are spread over time at the quota's rate, so a backlog
  comes back in order and is deferred about once, and a deferral makes no call, so it spends none
  of the request's HTTP attempts.  Return slots reach ``HYPATOS_BROKER_WAIT_MAX_S`` ahead at most;
  requests beyond that come back within it and ask again.

Redis is shared, never required: while it is unreachable, each process keeps its own schedule
(``quota_unavailable`` in the logs) and the fleet may exceed the quota; 429s are then retried.
"""

from __future__ import annotations

import asyncio
import functools
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import quote

import structlog
from redis.exceptions import RedisError

from worker import metrics
from worker.classify import retry_after_s
from worker.connections import Connection
from worker.errors import ErrorCode, TransientError
from worker.quota_schedule import Ask, Decision, MemorySchedule, RedisSchedule, Schedule, Verdict
from worker.retry import Sleep
from worker.settings import WorkerSettings

log = structlog.get_logger(__name__)

#: How long a learned rate is trusted without being seen again, and how often a process confirms it.
LEARNED_TTL_S = 3600.0
LEARNED_REFRESH_S = 600.0
#: How long "the API advertises no limit" is trusted before a call asks again.
UNLIMITED_TTL_S = 60.0
#: How often a request waiting for the rate to be learned asks again.
POLL_S = 0.05
#: Hold after a 429 that says nothing about when to come back.
DEFAULT_HOLD_S = 1.0
#: A call that wakes up later than one interval (within these bounds) after its slot takes a later
#: one: calls from a process that stalled must not reach the API together.  Later by less, it can
#: only take the next call's place, which the learned rate's margin of one call per window absorbs.
MIN_LATE_S, MAX_LATE_S = 0.02, 0.25
#: Slots one call may let pass that way before it goes anyway.
MAX_MISSED = 3


class QuotaWait(TransientError):
    """Raised when a connection's quota has no slot soon enough: the request waits on the broker."""

    code = ErrorCode.RATE_LIMITED


@functools.lru_cache(maxsize=1024)
def quota_key(connection_name: str) -> str:
    """The connection's key below the quota prefix: its name, percent-encoded (no ``:``, ``{`` or ``}``)."""
    return quote(connection_name, safe="")


def advertised_quotas(headers: Mapping[str, str]) -> list[tuple[float, float]]:
    """The quota policies of ``x-ratelimit-limit`` as (calls, window in seconds); empty when unreadable.

    The header reads ``<quota>, <quota>;w=<window s>[, ...]``: the current quota, then the policies.
    The policies count when there are any; a quota without a window is taken per second.
    """
    return list(_parsed_limit(headers.get("x-ratelimit-limit") or ""))


@functools.lru_cache(maxsize=256)
def _parsed_limit(value: str) -> tuple[tuple[float, float], ...]:
    """`advertised_quotas` of one header value (parsed once: every response of a connection repeats it)."""
    policies: list[tuple[float, float]] = []
    bare: list[tuple[float, float]] = []
    for item in value.split(","):
        limit, _, params = item.strip().partition(";")
        window = None
        for param in params.split(";"):
            name, _, number = param.strip().partition("=")
            if name.strip().lower() == "w":
                window = _number(number)
        calls = _number(limit)
        if calls > 0 and (window is None or window > 0):
            (bare if window is None else policies).append((calls, window or 1.0))
    return tuple(policies or bare)


def usable_rate(quotas: list[tuple[float, float]], share: float) -> float | None:
    """Calls per second to make under the strictest of `quotas`, or None without any.

    Of each window's quota, `share` is used, and at least one call is left unused (when the quota is
    2 or more): a server counting calls in fixed windows then takes one call delayed into the next
    window without a 429.
    """
    rates = [
        (min(calls * share, calls - 1) if calls >= 2 else calls * share) / window for calls, window in quotas
    ]
    return min(rates) if rates else None


def _number(text: str) -> float:
    try:
        return float(text.strip().strip('"'))
    except ValueError:
        return -1.0


@dataclass(frozen=True)
class QuotaPolicy:
    """How long a call may wait in the worker for its slot, and by how many requests at once."""

    inline_wait_max_s: float = 5.0
    #: Requests of one connection that may wait in one process at a time.
    max_waiting: int = 8
    #: The longest deferral that takes a return slot (the broker's longest delay).
    horizon_s: float = 300.0
    #: While no rate is known: how many calls go out to learn it, per how long.
    probe_calls: int = 4
    probe_s: float = 2.0
    #: Learn the rate of connections that configure none; off, only a 429 holds them back.
    learn: bool = True
    #: Share of the advertised rate used, to absorb network and scheduling jitter.
    learned_share: float = 0.95

    @property
    def lead_s(self) -> float:
        """Deferred requests are due back this much before their slot: the broker adds up to a second."""
        return min(0.5, self.inline_wait_max_s / 2)


class Quota(Protocol):
    """What the client needs: a slot before each call, the answer after it."""

    async def acquire(self, connection: Connection, *, in_progress: bool = False) -> None:
        """Return when the call may go; raise `QuotaWait` when it should wait on the broker."""

    async def observe(self, connection: Connection, status: int, headers: Mapping[str, str]) -> None:
        """Learn from a response's status and rate-limit headers."""


class FleetQuota:
    """The process's quota front for every connection; see the module docstring."""

    def __init__(
        self,
        policy: QuotaPolicy,
        *,
        shared: Schedule | None = None,
        local: MemorySchedule | None = None,
        sleep: Sleep = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._policy = policy
        self._shared = shared
        self._local = local or MemorySchedule()
        self._sleep = sleep
        self._clock = clock
        self._waiting: dict[str, int] = {}
        self._learned: dict[str, tuple[float, float]] = {}
        self._rate_known: dict[str, asyncio.Event] = {}
        self._degraded = False

    async def acquire(self, connection: Connection, *, in_progress: bool = False) -> None:
        """Wait here for a slot due soon, or raise `QuotaWait` with the time to wait on the broker."""
        name, key = connection.name, quota_key(connection.name)
        started = self._clock()
        missed = 0
        while True:
            may_wait = in_progress or missed > 0 or self._waiting.get(name, 0) < self._policy.max_waiting
            decision = await self._decide(key, self._ask(connection, may_wait))
            if decision.verdict is Verdict.GO:
                late_s = await self._wait(name, decision.wait_s)
                if late_s > min(max(decision.interval_s, MIN_LATE_S), MAX_LATE_S) and missed < MAX_MISSED:
                    missed += 1  # this process stalled past its slot: take a later one, do not bunch
                    metrics.QUOTA_SLOTS_MISSED.labels(name).inc()
                    continue
                metrics.QUOTA_WAIT.labels(name).observe(decision.wait_s + late_s)
                return
            polled_s = self._clock() - started
            if decision.verdict is Verdict.POLL and may_wait and polled_s < self._policy.inline_wait_max_s:
                await self._wait_for_rate(name, min(decision.wait_s, POLL_S * random.uniform(0.5, 1.5)))
                continue
            raise self._deferral(connection, decision)

    async def observe(self, connection: Connection, status: int, headers: Mapping[str, str]) -> None:
        """Share what the response says: the advertised rate when it changed, a hold after a 429."""
        name = connection.name
        rate = None
        if self._policy.learn:
            rate = usable_rate(advertised_quotas(headers), self._policy.learned_share)
            if rate is None and 200 <= status < 300:
                rate = 0.0
        hold_s = 0.0
        if status == 429:
            hinted = retry_after_s(status, headers)
            hold_s = DEFAULT_HOLD_S if hinted is None else hinted
        told = rate is not None
        if rate is not None and self._known(name, rate):
            rate = None
        if rate is not None or hold_s > 0:
            ttl_s = UNLIMITED_TTL_S if rate == 0 else LEARNED_TTL_S
            await self._learn(quota_key(name), rate, ttl_s * 1000, hold_s * 1000)
        if rate is not None:
            previous = self._learned.get(name)
            self._learned[name] = (rate, self._clock())
            if previous is None or previous[0] != rate:
                log.info("quota_rate_learned", connection=name, rate_per_s=round(rate, 3))
        if hold_s > 0:
            log.warning("quota_held", connection=name, hold_s=round(hold_s, 3))
        if told and name in self._rate_known:
            self._rate_known.pop(name).set()  # requests waiting for the rate here ask again, in order

    async def close(self) -> None:
        """Release the shared schedule's connections."""
        if self._shared is not None:
            await self._shared.close()

    # -- helpers -------------------------------------------------------------------------------------

    def _ask(self, connection: Connection, may_wait: bool) -> Ask:
        policy = self._policy
        return Ask(
            rate=connection.rate_limit_per_s or 0.0,
            burst=connection.rate_limit_burst or 1,
            inline_ms=policy.inline_wait_max_s * 1000 if may_wait else 0.0,
            horizon_ms=policy.horizon_s * 1000,
            probe_ms=policy.probe_s * 1000,
            probe_calls=policy.probe_calls,
            learn=policy.learn,
        )

    def _known(self, name: str, rate: float) -> bool:
        """Whether this process shared `rate` recently, so writing it again would change nothing."""
        known = self._learned.get(name)
        if known is None:
            return False
        known_rate, written_at = known
        fresh_s = min(LEARNED_REFRESH_S, UNLIMITED_TTL_S / 2) if rate == 0 else LEARNED_REFRESH_S
        return abs(known_rate - rate) <= 1e-9 * max(rate, 1.0) and self._clock() - written_at < fresh_s

    async def _wait(self, name: str, wait_s: float) -> float:
        """Sleep `wait_s` as one of the connection's waiters; return how much longer it took."""
        if wait_s <= 0:
            return 0.0
        self._waiting[name] = self._waiting.get(name, 0) + 1
        started = self._clock()
        try:
            await self._sleep(wait_s)
        finally:
            self._waiting[name] -= 1
        return max(self._clock() - started - wait_s, 0.0)

    async def _wait_for_rate(self, name: str, timeout_s: float) -> None:
        """Wait until this process learns the connection's rate, or `timeout_s` (another may learn it)."""
        learned = asyncio.ensure_future(self._rate_known.setdefault(name, asyncio.Event()).wait())
        timer = asyncio.ensure_future(self._sleep(timeout_s))
        self._waiting[name] = self._waiting.get(name, 0) + 1
        try:
            await asyncio.wait({learned, timer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._waiting[name] -= 1
            learned.cancel()
            timer.cancel()

    def _deferral(self, connection: Connection, decision: Decision) -> QuotaWait:
        if decision.verdict is Verdict.DEFER:
            delay_s = max(decision.wait_s - self._policy.lead_s, 0.0)
        elif decision.verdict is Verdict.DEFER_UNSLOTTED:
            delay_s = decision.wait_s * random.uniform(0.5, 1.0)
        else:
            delay_s = decision.wait_s
        metrics.QUOTA_DEFERRED.labels(connection.name).inc()
        return QuotaWait(
            f"connection {connection.name!r}: no slot in its request quota for {decision.wait_s:.1f} s; "
            "the request waits on the broker",
            retry_after_s=delay_s,
        )

    async def _decide(self, key: str, ask: Ask) -> Decision:
        if self._shared is not None:
            try:
                decision = await self._shared.decide(key, ask)
            except (RedisError, OSError) as exc:
                self._warn_unavailable("decide", exc)
            else:
                self._recovered()
                return decision
        return self._local.decide_now(key, ask)

    async def _learn(self, key: str, rate: float | None, ttl_ms: float, hold_ms: float) -> None:
        await self._local.learn(key, rate, ttl_ms, hold_ms)
        if self._shared is not None:
            try:
                await self._shared.learn(key, rate, ttl_ms, hold_ms)
            except (RedisError, OSError) as exc:
                self._warn_unavailable("learn", exc)

    def _warn_unavailable(self, operation: str, exc: BaseException) -> None:
        if not self._degraded:
            self._degraded = True
            log.warning(
                "quota_unavailable",
                operation=operation,
                error=f"{type(exc).__name__}: {exc}",
                detail="each process keeps its own quota schedule until Redis answers again",
            )

    def _recovered(self) -> None:
        if self._degraded:
            self._degraded = False
            log.info("quota_shared_again")


def open_quota(settings: WorkerSettings) -> FleetQuota:
    """The process's quota: shared through Redis when configured, else per process."""
    policy = QuotaPolicy(
        inline_wait_max_s=settings.inline_wait_max_s,
        max_waiting=max(1, settings.concurrency // 4),
        horizon_s=settings.broker_wait_max_s,
        learn=settings.quota_learn,
    )
    shared = None
    if settings.redis_url:
        shared = RedisSchedule.from_url(settings.redis_url, prefix=f"{settings.redis_prefix}quota:")
    return FleetQuota(policy, shared=shared)
