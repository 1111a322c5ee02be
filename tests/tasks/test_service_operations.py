"""The testConnection operation: a report per connection, reused within the interval, never a secret."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from types import SimpleNamespace
from typing import Any, cast

import aiohttp
import pytest
from pydantic import SecretStr

from tasks.outcomes import Answer
from tasks.service_operations import RecentReports, answer_test_connection, run_test_connection
from tests.support.echo_endpoint import EchoingTokenEndpoint, Sent
from worker.connections import Connection
from worker.errors import HypatosError, ValidationError
from worker.leases import Attempt
from worker.messages import Request
from worker.result_store import ClaimState
from worker.runtime import Services
from worker.settings import WorkerSettings
from worker.transport import Transport


def _connection(emulator: Any, secret: str = "test-secret", *, endpoint_url: str | None = None) -> Connection:
    return Connection(
        name="main",
        endpoint_url=endpoint_url or emulator.base_url,
        client_id="test-client",
        client_secret=SecretStr(secret),
    )


class FakeClock:
    """Monotonic seconds that only move when told to."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _run(test: Callable[[Services], Awaitable[Any]], interval_s: float = 60.0) -> Any:
    """Run `test` with the parts of `Services` the operation uses: settings and a transport."""

    async def go() -> Any:
        async with aiohttp.ClientSession() as session:
            settings = WorkerSettings(test_connection_interval_s=interval_s)
            services = SimpleNamespace(settings=settings, transport=Transport(session))
            return await test(cast(Services, services))

    return asyncio.run(go())


async def _answer_or_error(services: Services, connection: Connection, recent: RecentReports) -> Any:
    try:
        return await answer_test_connection(services, connection, recent)
    except HypatosError as error:
        return error


def test_given_twenty_concurrent_requests_then_one_check_is_made_and_the_others_reuse_it(
    emulator: Any,
) -> None:
    recent = RecentReports()

    async def test(services: Services) -> list[Answer]:
        calls = (answer_test_connection(services, _connection(emulator), recent) for _ in range(20))
        return list(await asyncio.gather(*calls))

    answers = _run(test)

    assert emulator.counters()["token_requests"] == 1
    assert sorted(answer.data["cached"] for answer in answers) == [False] + [True] * 19
    assert len({answer.data["checked_at"] for answer in answers}) == 1
    assert sorted(answer.attempts for answer in answers) == [0] * 19 + [2]  # token request and read call
    assert all(answer.data["usable"] for answer in answers)


def test_given_the_interval_has_passed_then_the_connection_is_checked_again(emulator: Any) -> None:
    clock = FakeClock()
    recent = RecentReports(clock)

    async def test(services: Services) -> list[bool]:
        cached = []
        for step_s in (0, 59.9, 0.2):
            clock.now += step_s
            answer = await answer_test_connection(services, _connection(emulator), recent)
            cached.append(answer.data["cached"])
        return cached

    assert _run(test) == [False, True, False]
    assert emulator.counters()["token_requests"] == 2


def test_given_changed_connection_settings_then_the_connection_is_checked_again(emulator: Any) -> None:
    recent = RecentReports()

    async def test(services: Services) -> list[Any]:
        before = await _answer_or_error(services, _connection(emulator, "wrong-secret"), recent)
        after = await _answer_or_error(services, _connection(emulator), recent)
        return [before, after]

    before, after = _run(test)

    assert isinstance(before, HypatosError) and before.code == "connection_unusable"
    assert isinstance(after, Answer) and after.data["cached"] is False and after.data["usable"]
    assert emulator.counters()["token_requests"] == 2


def test_given_an_interval_of_zero_then_every_request_is_checked(emulator: Any) -> None:
    recent = RecentReports()

    async def test(services: Services) -> list[bool]:
        answers = [await answer_test_connection(services, _connection(emulator), recent) for _ in range(3)]
        return [answer.data["cached"] for answer in answers]

    assert _run(test, interval_s=0) == [False, False, False]
    assert emulator.counters()["token_requests"] == 3


def test_given_an_unusable_connection_then_the_reused_report_fails_the_same_way(emulator: Any) -> None:
    recent = RecentReports()
    connection = _connection(emulator, "wrong-secret")

    async def test(services: Services) -> list[Any]:
        return [await _answer_or_error(services, connection, recent) for _ in range(2)]

    first, second = _run(test)

    assert isinstance(first, HypatosError) and isinstance(second, HypatosError)
    assert (first.code, second.code) == ("connection_unusable", "connection_unusable")
    assert (first.data["cached"], second.data["cached"]) == (False, True)
    assert (first.attempts, second.attempts) == (1, 0)
    assert second.message == first.message and "credentials_accepted" in second.message
    assert emulator.counters()["token_requests"] == 1


def _echo_header_and_secret(sent: Sent) -> str:
    return f"bad client {sent.authorization} / {sent.client_secret}"


def test_given_a_token_endpoint_echoing_the_credentials_then_the_failed_result_holds_none_of_them() -> None:
    secret = "queue-echo-secret-value"
    with EchoingTokenEndpoint(_echo_header_and_secret) as server:
        connection = _connection(None, secret, endpoint_url=server.base_url)

        async def test(services: Services) -> Any:
            return await _answer_or_error(services, connection, RecentReports())

        error = _run(test)

    assert isinstance(error, HypatosError) and error.code == "connection_unusable"
    basic = aiohttp.encode_basic_auth("test-client", secret).removeprefix("Basic ")
    shown = error.message + json.dumps(error.data)
    assert "[REDACTED]" in shown
    assert secret not in shown and basic not in shown and basic[:8] not in shown


def test_given_parameters_then_test_connection_refuses_them(emulator: Any) -> None:
    async def test(services: Services) -> Answer:
        request = Request(id="t1", connection="main", operation="testConnection", params={"verbose": True})
        return await run_test_connection(
            services, _connection(emulator), request, Attempt(ClaimState.NEW, 0.0)
        )

    with pytest.raises(ValidationError) as caught:
        _run(test)
    assert caught.value.details == [{"field": "params.verbose", "message": "unknown parameter"}]
    assert emulator.counters()["token_requests"] == 0
