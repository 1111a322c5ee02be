"""The request quota: the schedule (in memory and in a real Redis, same cases), the front, the client hook.

Schedule cases run against `MemorySchedule` on a fake clock and against `RedisSchedule` on Redis'
own clock; their rates are low (1-2 calls per second), so the few milliseconds a test takes do not
change any answer beyond the tolerance.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import aiohttp
import pytest
import redis
from pydantic import SecretStr
from structlog.testing import capture_logs

from tasks.catalog import CATALOG
from tasks.requests import build_request
from tasks.validation import validate
from worker.client import HypatosClient
from worker.connections import Connection
from worker.errors import TransientError
from worker.quota import FleetQuota, QuotaPolicy, QuotaWait, advertised_quotas, quota_key, usable_rate
from worker.quota_schedule import Ask, MemorySchedule, RedisSchedule, Verdict
from worker.retry import RetryPolicy
from worker.tokens import TokenProvider
from worker.transport import Transport

NOW_MS = 1_000_000.0


class FakeClock:
    """Seconds for the front, milliseconds for the memory schedule; `sleep` moves it on (if `advance`)."""

    def __init__(self, advance: bool = True) -> None:
        self.now_s = NOW_MS / 1000
        self.advance = advance
        self.slept: list[float] = []

    def ms(self) -> float:
        return self.now_s * 1000

    def s(self) -> float:
        return self.now_s

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        if self.advance:
            self.now_s += seconds
        await asyncio.sleep(0)  # let other tasks run, as a real sleep would


def _connection(name: str = "acme", **fields: Any) -> Connection:
    fields.setdefault("endpoint_url", "http://127.0.0.1:1/v2")
    return Connection(name=name, client_id="id", client_secret=SecretStr("s3cret-value"), **fields)


def _ask(
    rate: float = 1.0, burst: int = 1, inline_s: float = 0.0, horizon_s: float = 300.0, **options: Any
) -> Ask:
    options.setdefault("probe_calls", 1)
    return Ask(
        rate=rate,
        burst=burst,
        inline_ms=inline_s * 1000,
        horizon_ms=horizon_s * 1000,
        probe_ms=2000,
        **options,
    )


# -- headers ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "quotas"),
    [
        ("10, 10;w=1", [(10, 1)]),
        ("100, 100;w=60", [(100, 60)]),
        ("10, 10;w=1, 100;w=60", [(10, 1), (100, 60)]),
        ("5", [(5, 1)]),
        ('20, 20;w="2"', [(20, 2)]),
        ("50, 50;w=0.5", [(50, 0.5)]),
        ("", []),
        ("many", []),
        ("0, 0;w=1", []),
    ],
)
def test_given_an_x_ratelimit_limit_header_then_each_quota_policy_is_read(
    header: str, quotas: list[tuple[float, float]]
) -> None:
    assert advertised_quotas({"x-ratelimit-limit": header}) == quotas


@pytest.mark.parametrize(
    ("quotas", "rate"),
    [
        ([(10, 1)], 9.0),  # one call per window left unused...
        ([(100, 1)], 95.0),  # ... or the share, whichever leaves more
        ([(10, 1), (100, 60)], 95 / 60),  # the strictest policy counts
        ([(20, 2)], 9.5),
        ([(1, 1)], 0.95),
        ([], None),
    ],
)
def test_given_advertised_quotas_then_the_rate_used_leaves_room_for_calls_delayed_in_transit(
    quotas: list[tuple[float, float]], rate: float | None
) -> None:
    assert usable_rate(quotas, share=0.95) == (pytest.approx(rate) if rate else None)


def test_given_connection_names_with_separators_then_their_keys_cannot_collide_or_use_hash_tags() -> None:
    assert quota_key("acme") == "acme"
    assert quota_key("a:b") != quota_key("a") + ":b"
    assert not set(quota_key("x:{y}/z")) & set(":{}/")


# -- the schedule: the same cases in memory and in Redis -------------------------------------------


@pytest.fixture(params=["memory", "redis"])
def schedule(request: pytest.FixtureRequest) -> Iterator[tuple[Any, Callable[[float], Awaitable[None]]]]:
    """A schedule and a way to let time pass on its clock."""
    if request.param == "memory":
        clock = FakeClock()
        yield MemorySchedule(clock=clock.ms), clock.sleep
        return
    url = request.getfixturevalue("redis_url")
    prefix = f"test:quota:{uuid.uuid4().hex}:"
    yield RedisSchedule.from_url(url, prefix=prefix), asyncio.sleep
    client = redis.Redis.from_url(url)
    keys = list(client.scan_iter(match=f"{prefix}*"))
    if keys:
        client.delete(*keys)
    client.close()


def _run(schedule: Any, steps: Callable[[Any], Awaitable[Any]]) -> Any:
    async def run() -> Any:
        try:
            return await steps(schedule)
        finally:
            await schedule.close()

    return asyncio.run(run())


def _answers(*decisions: Any) -> list[tuple[Verdict, float]]:
    return [(d.verdict, d.wait_s) for d in decisions]


def _approx(expected: list[tuple[Verdict, float]]) -> list[tuple[Verdict, Any]]:
    return [(verdict, pytest.approx(wait, abs=0.05)) for verdict, wait in expected]


def test_given_a_rate_then_calls_are_spaced_and_later_callers_get_spread_return_slots(schedule: Any) -> None:
    store, _ = schedule

    async def steps(s: Any) -> list[tuple[Verdict, float]]:
        return _answers(*[await s.decide("k", _ask(rate=2.0)) for _ in range(4)])

    assert _run(store, steps) == _approx(
        [(Verdict.GO, 0), (Verdict.DEFER, 0.5), (Verdict.DEFER, 1.0), (Verdict.DEFER, 1.5)]
    )


def test_given_slots_due_soon_then_callers_wait_in_place_up_to_the_inline_bound(schedule: Any) -> None:
    store, _ = schedule

    async def steps(s: Any) -> list[tuple[Verdict, float]]:
        return _answers(*[await s.decide("k", _ask(rate=2.0, inline_s=1.0)) for _ in range(5)])

    assert _run(store, steps) == _approx(
        [(Verdict.GO, 0), (Verdict.GO, 0.5), (Verdict.GO, 1.0), (Verdict.DEFER, 1.5), (Verdict.DEFER, 2.0)]
    )


def test_given_a_burst_then_that_many_calls_go_at_once(schedule: Any) -> None:
    store, _ = schedule

    async def steps(s: Any) -> list[tuple[Verdict, float]]:
        return _answers(*[await s.decide("k", _ask(rate=1.0, burst=3)) for _ in range(4)])

    assert _run(store, steps) == _approx([(Verdict.GO, 0)] * 3 + [(Verdict.DEFER, 1.0)])


def test_given_return_slots_beyond_the_horizon_then_none_is_taken(schedule: Any) -> None:
    store, _ = schedule

    async def steps(s: Any) -> list[tuple[Verdict, float]]:
        return _answers(*[await s.decide("k", _ask(rate=1.0, horizon_s=1.5)) for _ in range(4)])

    assert _run(store, steps) == _approx(
        [(Verdict.GO, 0), (Verdict.DEFER, 1.0)] + [(Verdict.DEFER_UNSLOTTED, 1.5)] * 2
    )


def test_given_connections_then_each_has_its_own_schedule(schedule: Any) -> None:
    store, _ = schedule

    async def steps(s: Any) -> list[tuple[Verdict, float]]:
        return _answers(await s.decide("a", _ask()), await s.decide("b", _ask()), await s.decide("a", _ask()))

    assert _run(store, steps) == _approx([(Verdict.GO, 0), (Verdict.GO, 0), (Verdict.DEFER, 1.0)])


def test_given_no_rate_known_then_a_few_calls_probe_and_the_learned_rate_applies_after(schedule: Any) -> None:
    store, _ = schedule
    unknown = _ask(rate=0, probe_calls=2)

    async def steps(s: Any) -> list[tuple[Verdict, float]]:
        probes = [await s.decide("k", unknown) for _ in range(3)]
        await s.learn("k", 2.0, ttl_ms=60_000, hold_ms=0)
        return _answers(*probes, await s.decide("k", unknown), await s.decide("k", unknown))

    # the two probes count against the learned rate: the next calls come after their two intervals
    assert _run(store, steps) == _approx(
        [(Verdict.GO, 0), (Verdict.GO, 0), (Verdict.POLL, 2.0), (Verdict.DEFER, 1.0), (Verdict.DEFER, 1.5)]
    )


def test_given_learning_off_then_calls_without_a_rate_go_unless_a_429_holds_them(schedule: Any) -> None:
    store, _ = schedule
    free = _ask(rate=0, learn=False)

    async def steps(s: Any) -> list[tuple[Verdict, float]]:
        before = [await s.decide("k", free) for _ in range(3)]
        await s.learn("k", None, ttl_ms=0, hold_ms=2000)
        held = [await s.decide("k", free), await s.decide("k", _ask(rate=0, learn=False, inline_s=5))]
        return _answers(*before, *held)

    assert _run(store, steps) == _approx([(Verdict.GO, 0)] * 3 + [(Verdict.DEFER, 2.0), (Verdict.GO, 2.0)])


def test_given_the_api_advertises_no_limit_then_calls_go_until_that_knowledge_expires(schedule: Any) -> None:
    store, sleep = schedule
    unknown = _ask(rate=0)

    async def steps(s: Any) -> list[tuple[Verdict, float]]:
        await s.learn("k", 0.0, ttl_ms=50, hold_ms=0)
        free = [await s.decide("k", unknown) for _ in range(3)]
        await sleep(0.1)
        return _answers(*free, await s.decide("k", unknown), await s.decide("k", unknown))

    assert _run(store, steps) == _approx([(Verdict.GO, 0)] * 4 + [(Verdict.POLL, 2.0)])


def test_given_a_hold_after_a_429_then_no_call_goes_before_it_ends(schedule: Any) -> None:
    store, _ = schedule

    async def steps(s: Any) -> list[tuple[Verdict, float]]:
        await s.learn("k", None, ttl_ms=0, hold_ms=3000)
        return _answers(await s.decide("k", _ask(rate=1.0)), await s.decide("k", _ask(rate=1.0, inline_s=5)))

    assert _run(store, steps) == _approx([(Verdict.DEFER, 3.0), (Verdict.GO, 3.0)])


# -- the front: waiting in place, deferring, learning ----------------------------------------------


def _front(clock: FakeClock, schedule: MemorySchedule | None = None, **policy: Any) -> FleetQuota:
    policy.setdefault("inline_wait_max_s", 1.0)
    return FleetQuota(
        QuotaPolicy(**policy),
        local=schedule or MemorySchedule(clock=clock.ms),
        sleep=clock.sleep,
        clock=clock.s,
    )


def test_given_a_configured_rate_then_callers_wait_in_place_then_defer_without_spending_attempts() -> None:
    clock = FakeClock(advance=False)  # every caller arrives at the same moment
    quota = _front(clock)
    connection = _connection(rate_limit_per_s=4)

    async def run() -> QuotaWait:
        for _ in range(5):  # slots at 0, 0.25, 0.5, 0.75 and 1.0 s: within the 1 s bound
            await quota.acquire(connection)
        with pytest.raises(QuotaWait) as caught:
            await quota.acquire(connection)
        return caught.value

    error = asyncio.run(run())
    assert clock.slept == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert isinstance(error, TransientError) and error.code == "rate_limited" and error.retryable
    assert error.attempts == 0
    assert error.retry_after_s == pytest.approx(1.25 - 0.5)  # its return slot, less the lead


def test_given_a_backlog_then_deferrals_come_back_spread_at_the_quota_rate() -> None:
    clock = FakeClock()
    quota = _front(clock, inline_wait_max_s=0.0)
    connection = _connection(rate_limit_per_s=10)

    async def run() -> list[float]:
        await quota.acquire(connection)
        delays = []
        for _ in range(20):
            with pytest.raises(QuotaWait) as caught:
                await quota.acquire(connection)
            delays.append(caught.value.retry_after_s)
        return delays

    delays = asyncio.run(run())
    assert delays == pytest.approx([0.1 * n for n in range(1, 21)])


def test_given_a_process_that_wakes_up_late_then_it_lets_its_slot_pass_rather_than_send_a_bunch() -> None:
    clock = FakeClock()
    stalls = [0.3]  # the first sleep overruns by 300 ms, as on an overloaded host

    async def stalling_sleep(seconds: float) -> None:
        await clock.sleep(seconds)
        clock.now_s += stalls.pop() if stalls else 0.0

    quota = FleetQuota(
        QuotaPolicy(inline_wait_max_s=1.0),
        local=MemorySchedule(clock=clock.ms),
        sleep=stalling_sleep,
        clock=clock.s,
    )
    connection = _connection(rate_limit_per_s=10)

    async def run() -> None:
        await quota.acquire(connection)  # slot 0.0
        await quota.acquire(connection)  # slot 0.1, woke at 0.4: takes the next free slot (0.4) instead
        await quota.acquire(connection)  # slot 0.5

    asyncio.run(run())
    assert clock.slept == pytest.approx([0.1, 0.1])
    assert clock.now_s - NOW_MS / 1000 == pytest.approx(0.5)


def test_given_enough_requests_waiting_in_a_process_then_more_are_deferred_unless_in_progress() -> None:
    async def run() -> tuple[list[str], list[str]]:
        clock = FakeClock(advance=False)  # every caller arrives at the same moment, however busy the host
        quota = _front(clock, inline_wait_max_s=5.0, max_waiting=2)
        connection = _connection(rate_limit_per_s=20)
        outcomes: list[str] = []

        async def one(in_progress: bool = False) -> None:
            try:
                await quota.acquire(connection, in_progress=in_progress)
                outcomes.append("went")
            except QuotaWait:
                outcomes.append("deferred")

        await one()  # the first slot is free: no wait
        await asyncio.gather(one(), one(), one())  # two wait, the third finds the waiting places taken
        first = sorted(outcomes)
        outcomes.clear()
        await asyncio.gather(one(), one(), one(), one(in_progress=True))
        return first, sorted(outcomes)

    first, second = asyncio.run(run())
    assert first == ["deferred", "went", "went", "went"]
    assert second == ["deferred", "went", "went", "went"]  # a request in progress waits regardless


def test_given_no_rate_known_then_callers_wait_for_the_probe_and_use_the_learned_rate() -> None:
    clock = FakeClock()
    quota = _front(clock, inline_wait_max_s=2.0, probe_calls=1)
    connection = _connection()

    async def run() -> None:
        await quota.acquire(connection)  # the probe
        waiter = asyncio.ensure_future(quota.acquire(connection))
        await asyncio.sleep(0)
        await quota.observe(connection, 200, {"x-ratelimit-limit": "10, 10;w=1"})
        await waiter

    with capture_logs() as logs:
        asyncio.run(run())
    # polled briefly, then waited one interval of the learned rate: the probe counts against it
    assert clock.slept and max(clock.slept) <= 1 / 9 + 0.01
    assert [e["rate_per_s"] for e in logs if e["event"] == "quota_rate_learned"] == [pytest.approx(9.0)]


def test_given_a_probe_that_never_answers_then_waiting_callers_go_to_the_broker() -> None:
    clock = FakeClock()
    quota = _front(clock, inline_wait_max_s=0.5, probe_calls=1)
    connection = _connection()

    async def run() -> QuotaWait:
        await quota.acquire(connection)
        with pytest.raises(QuotaWait) as caught:
            await quota.acquire(connection)
        return caught.value

    error = asyncio.run(run())
    assert 0.5 <= sum(clock.slept) <= 0.6
    assert error.retry_after_s == pytest.approx(2.0 - sum(clock.slept), abs=0.01)


def test_given_learning_off_then_only_429s_hold_a_connection_without_a_rate() -> None:
    clock = FakeClock(advance=False)
    quota = _front(clock, inline_wait_max_s=0.0, learn=False)
    connection = _connection()
    ten = {"x-ratelimit-limit": "10, 10;w=1", "x-ratelimit-remaining": "0", "x-ratelimit-reset": "2"}

    async def run() -> float | None:
        for _ in range(20):
            await quota.acquire(connection)
            await quota.observe(connection, 200, ten)
        await quota.observe(connection, 429, ten)
        with pytest.raises(QuotaWait) as caught:
            await quota.acquire(connection)
        return caught.value.retry_after_s

    with capture_logs() as logs:
        assert asyncio.run(run()) == pytest.approx(2.0)
    assert clock.slept == []
    assert "quota_rate_learned" not in [e["event"] for e in logs]


class CountingSchedule(MemorySchedule):
    def __init__(self, clock: Callable[[], float]) -> None:
        super().__init__(clock)
        self.learned: list[tuple[float | None, float]] = []

    async def learn(self, key: str, rate: float | None, ttl_ms: float, hold_ms: float) -> None:
        self.learned.append((rate, hold_ms))
        await super().learn(key, rate, ttl_ms, hold_ms)


def test_given_the_same_advertised_limit_again_then_nothing_is_written_until_it_changes() -> None:
    clock = FakeClock()
    shared = CountingSchedule(clock.ms)
    quota = FleetQuota(QuotaPolicy(), shared=shared, sleep=clock.sleep, clock=clock.s)
    connection = _connection()
    ten = {"x-ratelimit-limit": "10, 10;w=1", "x-ratelimit-remaining": "3", "x-ratelimit-reset": "1"}

    async def run() -> None:
        for _ in range(5):
            await quota.observe(connection, 200, ten)
        await quota.observe(connection, 200, {**ten, "x-ratelimit-limit": "20, 20;w=1"})

    asyncio.run(run())
    assert shared.learned == [(pytest.approx(9.0), 0), (pytest.approx(19.0), 0)]


def test_given_a_429_then_the_connection_is_held_until_its_reset() -> None:
    clock = FakeClock()
    quota = _front(clock, inline_wait_max_s=0.0)
    connection = _connection(rate_limit_per_s=10)
    refused = {"x-ratelimit-limit": "10, 10;w=1", "x-ratelimit-remaining": "0", "x-ratelimit-reset": "2"}

    async def run() -> float | None:
        await quota.acquire(connection)
        await quota.observe(connection, 429, refused)
        with pytest.raises(QuotaWait) as caught:
            await quota.acquire(connection)
        return caught.value.retry_after_s

    with capture_logs() as logs:
        assert asyncio.run(run()) == pytest.approx(2.0)  # held 2 s; inline bound 0 means no lead
    assert any(e["event"] == "quota_held" for e in logs)


def test_given_redis_unreachable_then_each_process_keeps_its_own_schedule_and_says_so_once() -> None:
    async def run() -> list[str]:
        shared = RedisSchedule.from_url("redis://127.0.0.1:1/0", prefix="x:", socket_timeout_s=0.2)
        quota = FleetQuota(QuotaPolicy(inline_wait_max_s=0.0), shared=shared)
        connection = _connection(rate_limit_per_s=1)
        outcomes = []
        for _ in range(3):
            try:
                await quota.acquire(connection)
                outcomes.append("went")
            except QuotaWait:
                outcomes.append("deferred")
        await quota.close()
        return outcomes

    with capture_logs() as logs:
        assert asyncio.run(run()) == ["went", "deferred", "deferred"]
    assert [e["event"] for e in logs].count("quota_unavailable") == 1


# -- the client hook, over HTTP to the emulator ------------------------------------------------------


def _companies_list() -> Any:
    declared = CATALOG["companiesList"]
    return build_request(declared, validate(declared, {}, None), None)


def _with_client(emulator: Any, quota: FleetQuota, test: Callable[[HypatosClient], Awaitable[Any]]) -> Any:
    async def run() -> Any:
        async with aiohttp.ClientSession() as session:
            transport = Transport(session)
            policy = RetryPolicy(attempts=3, budget_s=5, initial_s=0.01, max_s=0.05, inline_wait_max_s=0.5)
            tokens = TokenProvider(transport, policy=policy)
            return await test(HypatosClient(transport, tokens, policy=policy, quota=quota))

    return asyncio.run(run())


def test_given_a_quota_wait_then_the_client_makes_no_call_and_does_not_retry(emulator: Any) -> None:
    emulator.add_client("quota-client", "quota-secret", rate_limit=100)
    connection = Connection(
        name="q",
        endpoint_url=emulator.base_url,
        client_id="quota-client",
        client_secret=SecretStr("quota-secret"),
        rate_limit_per_s=1,
    )
    request = _companies_list()
    quota = FleetQuota(QuotaPolicy(inline_wait_max_s=0.0))

    async def test(client: HypatosClient) -> QuotaWait:
        await client.call(connection, request)
        with pytest.raises(QuotaWait) as caught:
            await client.call(connection, request)
        return caught.value

    error = _with_client(emulator, quota, test)
    assert error.attempts == 0
    assert emulator.counters()["operations"]["Companies_list"] == 1


def test_given_no_configured_rate_then_the_client_learns_the_advertised_one(emulator: Any) -> None:
    emulator.add_client("learner", "learner-secret", rate_limit=4, rate_window_s=2)
    connection = Connection(
        name="l",
        endpoint_url=emulator.base_url,
        client_id="learner",
        client_secret=SecretStr("learner-secret"),
    )
    request = _companies_list()
    clock = FakeClock()
    quota = FleetQuota(QuotaPolicy(inline_wait_max_s=0.0), sleep=clock.sleep)

    async def test(client: HypatosClient) -> float | None:
        await client.call(connection, request)  # the probe: teaches 4 per 2 s, and counts against it
        with pytest.raises(QuotaWait) as caught:  # the next slot of the learned rate is one interval on
            await client.call(connection, request)
        return caught.value.retry_after_s

    assert _with_client(emulator, quota, test) == pytest.approx(2 / 3, abs=0.05)  # 3 calls per 2 s
