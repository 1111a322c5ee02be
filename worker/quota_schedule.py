"""The quota schedule of one connection: GCRA in Redis (one script, one round trip) or in memory.

Each connection's state is a handful of numbers, all times in milliseconds on the schedule's clock
(Redis' own ``TIME`` for the fleet, so hosts need not agree on the time; the monotonic clock in
memory):

``tat``
    The GCRA's theoretical arrival time: when the next call is due.  A grant moves it on by one
    interval (``1000 / rate``); a call may go when ``tat - tolerance <= now``, where the tolerance is
    ``(burst - 1)`` intervals.
``dtat``
    The same for requests sent back to the broker: each deferral takes the next return slot after
    the calls already granted and the deferrals already handed out, so a backlog comes back spread
    at the quota's rate instead of all at once.
``lrate``, ``lexp``
    The rate learned from the API's ``x-ratelimit-limit`` header (``0``: the API advertised no limit)
    and when that knowledge expires.  Used only when the connection configures no rate of its own.
``probe``, ``probes``
    While no rate is known, a few calls go out to learn it (``probes`` so far); ``probe`` is when
    their turn lapses, should none of them answer, and the next few may go.

`decide` answers what one caller may do (`Verdict`); `learn` records a learned rate (the calls that
went out to learn it are charged to the schedule, so they and the first scheduled calls do not
overrun the server's first window) and pushes ``tat`` out after a 429.  `RedisSchedule` runs the
Lua scripts below; `MemorySchedule` is the same algorithm in Python, for a single process (and the
fallback while Redis is unreachable).  The unit tests run both against the same cases.
"""

from __future__ import annotations

import enum
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

if TYPE_CHECKING:
    from redis.commands.core import AsyncScript

#: Socket timeouts of the schedule's Redis client: a schedule that cannot answer within this is
#: treated as unavailable, and the process falls back to its own.
SOCKET_TIMEOUT_S = 1.0

#: How long an idle connection's state stays in Redis (it is re-created from nothing at no cost).
STATE_TTL_MS = 24 * 3600 * 1000


class Verdict(enum.IntEnum):
    """What a caller may do, as `decide` answers."""

    #: Call after `Decision.wait_s` (a slot is taken).
    GO = 0
    #: Come back from the broker after `Decision.wait_s` (a return slot is taken).
    DEFER = 1
    #: No return slot within the horizon: come back after about `Decision.wait_s` and ask again.
    DEFER_UNSLOTTED = 2
    #: No rate known and another call is learning it: ask again after `Decision.wait_s` at most.
    POLL = 3


@dataclass(frozen=True)
class Decision:
    """A `Verdict`, the wait that goes with it, and the schedule's interval between calls (0: none)."""

    verdict: Verdict
    wait_s: float = 0.0
    interval_s: float = 0.0


@dataclass(frozen=True)
class Ask:
    """One caller's question: its connection's configured rate and burst, and the caller's limits.

    A `rate` of 0 means none is configured: the learned one applies, or with `learn` off, none (only
    a hold after a 429 does).  While no rate is learned, up to `probe_calls` calls per `probe_ms` go
    out to learn it.
    """

    rate: float
    burst: int
    inline_ms: float
    horizon_ms: float
    probe_ms: float
    probe_calls: int = 4
    learn: bool = True

    def args(self) -> list[str]:
        """The script's ARGV."""
        values = (
            self.rate,
            self.burst,
            self.inline_ms,
            self.horizon_ms,
            self.probe_ms,
            self.probe_calls,
            1 if self.learn else 0,
        )
        return [repr(float(value)) for value in values]


class Schedule(Protocol):
    """Where the schedule of every connection lives."""

    async def decide(self, key: str, ask: Ask) -> Decision:
        """Take a slot for one call, or say how long to wait; see the module docstring."""

    async def learn(self, key: str, rate: float | None, ttl_ms: float, hold_ms: float) -> None:
        """Record a learned `rate` (None: nothing learned) for `ttl_ms`; hold every call `hold_ms`."""

    async def close(self) -> None:
        """Release connections."""


# KEYS[1]: the connection's hash.  ARGV: rate, burst, inline_ms, horizon_ms, probe_ms, probe_calls,
# learn.  Returns {verdict, wait, interval}, in whole microseconds (rounded up).
DECIDE_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local inline_ms, horizon_ms, probe_ms = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local probe_calls, learn = tonumber(ARGV[6]), tonumber(ARGV[7])
local s = redis.call('HMGET', KEYS[1], 'tat', 'dtat', 'lrate', 'lexp', 'probe', 'probes')
local function us(ms) return math.ceil(ms * 1000) end
local function put(field, value)
  redis.call('HSET', KEYS[1], field, string.format('%.3f', value))
  redis.call('PEXPIRE', KEYS[1], __TTL__)
end
local tat = math.max(tonumber(s[1]) or 0, now)
if rate <= 0 then
  burst = 1
  if learn == 0 then rate = 0
  elseif (tonumber(s[4]) or 0) > now then rate = tonumber(s[3])
  else rate = -1 end
end
if rate == 0 then
  local wait = tat - now
  if wait <= inline_ms then return {0, us(wait), 0} end
  return {1, us(wait), 0}
end
if rate < 0 then
  local probe, probes = tonumber(s[5]) or 0, tonumber(s[6]) or 0
  if probe <= now then probe, probes = now + probe_ms, 0 end
  if probes < probe_calls then
    put('probe', probe)
    put('probes', probes + 1)
    return {0, 0, 0}
  end
  return {3, us(probe - now), 0}
end
local interval = 1000 / rate
local tolerance = (burst - 1) * interval
local wait = tat - tolerance - now
local step = us(interval)
if wait <= inline_ms then
  put('tat', tat + interval)
  return {0, us(math.max(0, wait)), step}
end
local slot = math.max(tonumber(s[2]) or 0, tat - tolerance)
if slot - now > horizon_ms then return {2, us(horizon_ms), step} end
put('dtat', slot + interval)
return {1, us(slot - now), step}
""".replace("__TTL__", str(STATE_TTL_MS))

# KEYS[1]: the connection's hash.  ARGV: rate (negative: nothing learned), ttl_ms, hold_ms.
LEARN_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local rate, ttl_ms, hold_ms = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
if rate >= 0 then
  local probes = tonumber(redis.call('HGET', KEYS[1], 'probes')) or 0
  redis.call('HSET', KEYS[1], 'lrate', string.format('%.6f', rate),
             'lexp', string.format('%.3f', now + ttl_ms))
  redis.call('HDEL', KEYS[1], 'probe', 'probes')
  if rate > 0 and probes > 0 then
    local tat = tonumber(redis.call('HGET', KEYS[1], 'tat')) or 0
    redis.call('HSET', KEYS[1], 'tat', string.format('%.3f', math.max(tat, now + probes * 1000 / rate)))
  end
end
if hold_ms > 0 then
  local tat = tonumber(redis.call('HGET', KEYS[1], 'tat')) or 0
  redis.call('HSET', KEYS[1], 'tat', string.format('%.3f', math.max(tat, now + hold_ms)))
end
redis.call('PEXPIRE', KEYS[1], __TTL__)
return 1
""".replace("__TTL__", str(STATE_TTL_MS))


class RedisSchedule:
    """The fleet's schedule in Redis: every call of every process asks one script, one round trip.

    Redis errors propagate (``RedisError``, ``OSError``); the caller decides how to degrade.  The
    schedule owns `redis_client`: `close` closes it.
    """

    def __init__(self, redis_client: Redis, *, prefix: str) -> None:
        self._redis = redis_client
        self._prefix = prefix
        self._decide: AsyncScript = redis_client.register_script(DECIDE_LUA)
        self._learn: AsyncScript = redis_client.register_script(LEARN_LUA)

    @classmethod
    def from_url(cls, url: str, *, prefix: str, socket_timeout_s: float = SOCKET_TIMEOUT_S) -> RedisSchedule:
        """A schedule on a new client for `url`, with short timeouts and one immediate reconnect."""
        client = Redis.from_url(
            url,
            socket_timeout=socket_timeout_s,
            socket_connect_timeout=socket_timeout_s,
            retry=Retry(NoBackoff(), 1),
        )
        return cls(client, prefix=prefix)

    async def decide(self, key: str, ask: Ask) -> Decision:
        verdict, wait_us, interval_us = await self._decide(keys=[self._prefix + key], args=ask.args())
        return Decision(Verdict(int(verdict)), int(wait_us) / 1e6, int(interval_us) / 1e6)

    async def learn(self, key: str, rate: float | None, ttl_ms: float, hold_ms: float) -> None:
        args = [repr(-1.0 if rate is None else float(rate)), repr(float(ttl_ms)), repr(float(hold_ms))]
        await self._learn(keys=[self._prefix + key], args=args)

    async def close(self) -> None:
        closer = getattr(self._redis, "aclose", None) or self._redis.close
        await closer()


@dataclass
class _State:
    tat: float = 0.0
    dtat: float = 0.0
    lrate: float = 0.0
    lexp: float = 0.0
    probe: float = 0.0
    probes: int = 0


def _monotonic_ms() -> float:
    return time.monotonic() * 1000


class MemorySchedule:
    """`DECIDE_LUA` and `LEARN_LUA` in Python, for one process; `clock` returns milliseconds."""

    def __init__(self, clock: Callable[[], float] = _monotonic_ms) -> None:
        self._clock = clock
        self._states: dict[str, _State] = {}

    async def decide(self, key: str, ask: Ask) -> Decision:
        return self.decide_now(key, ask)

    def decide_now(self, key: str, ask: Ask) -> Decision:
        """`decide` without the coroutine (it never waits)."""
        now = self._clock()
        s = self._states.setdefault(key, _State())
        tat = max(s.tat, now)
        rate, burst = ask.rate, ask.burst
        if rate <= 0:
            burst = 1
            rate = 0.0 if not ask.learn else s.lrate if s.lexp > now else -1.0
        if rate == 0:
            return _decision(Verdict.GO if tat - now <= ask.inline_ms else Verdict.DEFER, tat - now)
        if rate < 0:
            return self._probe(s, now, ask)
        interval = 1000 / rate
        tolerance = (burst - 1) * interval
        wait = tat - tolerance - now
        if wait <= ask.inline_ms:
            s.tat = tat + interval
            return _decision(Verdict.GO, max(0.0, wait), interval)
        slot = max(s.dtat, tat - tolerance)
        if slot - now > ask.horizon_ms:
            return _decision(Verdict.DEFER_UNSLOTTED, ask.horizon_ms, interval)
        s.dtat = slot + interval
        return _decision(Verdict.DEFER, slot - now, interval)

    @staticmethod
    def _probe(s: _State, now: float, ask: Ask) -> Decision:
        if s.probe <= now:
            s.probe, s.probes = now + ask.probe_ms, 0
        if s.probes < ask.probe_calls:
            s.probes += 1
            return Decision(Verdict.GO)
        return _decision(Verdict.POLL, s.probe - now)

    async def learn(self, key: str, rate: float | None, ttl_ms: float, hold_ms: float) -> None:
        now = self._clock()
        s = self._states.setdefault(key, _State())
        if rate is not None and rate >= 0:
            if rate > 0 and s.probes > 0:  # the calls that learnt the rate count against it
                s.tat = max(s.tat, now + s.probes * 1000 / rate)
            s.lrate, s.lexp, s.probe, s.probes = rate, now + ttl_ms, 0.0, 0
        if hold_ms > 0:
            s.tat = max(s.tat, now + hold_ms)

    async def close(self) -> None:
        return None


def _decision(verdict: Verdict, wait_ms: float, interval_ms: float = 0.0) -> Decision:
    """Whole microseconds, rounded up, as the script answers."""
    return Decision(verdict, math.ceil(wait_ms * 1000) / 1e6, math.ceil(interval_ms * 1000) / 1e6)
