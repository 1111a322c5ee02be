"""Tokens against the emulator over real HTTP: single flight, renewal, refusal, retries."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from pydantic import SecretStr

from worker.connections import Connection
from worker.errors import CredentialsRefused, TransientError
from worker.logging import REDACTED, secret_registry
from worker.retry import RetryPolicy
from worker.tokens import TokenProvider, renew_margin_s, token_request
from worker.transport import Transport

FAST = RetryPolicy(attempts=5, budget_s=10, initial_s=0.01, max_s=0.05)


def _connection(emulator: Any, secret: str = "test-secret", **fields: Any) -> Connection:
    return Connection(
        name="main",
        endpoint_url=emulator.base_url,
        client_id="test-client",
        client_secret=SecretStr(secret),
        **fields,
    )


def _with_provider(test: Callable[[TokenProvider], Awaitable[Any]], **options: Any) -> Any:
    options.setdefault("policy", FAST)

    async def run() -> Any:
        async with aiohttp.ClientSession() as session:
            return await test(TokenProvider(Transport(session), **options))

    return asyncio.run(run())


def test_given_a_cold_connection_then_concurrent_callers_share_one_token_request(emulator: Any) -> None:
    emulator.set_faults(token_latency_ms=200)
    connection = _connection(emulator)

    async def test(tokens: TokenProvider) -> set[str]:
        got = await asyncio.gather(*(tokens.get(connection) for _ in range(100)))
        return {t.value for t in got}

    assert len(_with_provider(test)) == 1
    assert emulator.counters()["token_requests"] == 1


def test_given_an_invalidated_token_then_the_next_caller_fetches_a_new_one(emulator: Any) -> None:
    connection = _connection(emulator)

    async def test(tokens: TokenProvider) -> tuple[str, str]:
        first = await tokens.get(connection)
        await tokens.invalidate(connection, first)
        second = await tokens.get(connection)
        return first.value, second.value

    first, second = _with_provider(test)
    assert first != second
    assert emulator.counters()["token_requests"] == 2


def test_given_a_token_near_expiry_then_it_is_renewed_ahead(emulator: Any) -> None:
    emulator.set_faults(token_lifetime_s=2)
    connection = _connection(emulator)

    async def test(tokens: TokenProvider) -> tuple[str, str]:
        first = await tokens.get(connection)
        await asyncio.sleep(1.7)  # inside the renewal margin (a fifth of 2 s), not yet expired
        second = await tokens.get(connection)
        return first.value, second.value

    first, second = _with_provider(test)
    assert first != second


def test_given_a_wrong_secret_then_credentials_are_refused_once_per_cooldown(emulator: Any) -> None:
    connection = _connection(emulator, secret="wrong-secret")

    async def test(tokens: TokenProvider) -> list[BaseException]:
        outcomes = await asyncio.gather(*(tokens.get(connection) for _ in range(20)), return_exceptions=True)
        return [o for o in outcomes if isinstance(o, BaseException)]

    errors = _with_provider(test)
    assert len(errors) == 20 and all(isinstance(e, CredentialsRefused) for e in errors)
    assert errors[0].code == "auth_failed" and "client_secret" in errors[0].message
    assert "wrong-secret" not in str(errors[0])
    assert emulator.counters()["token_requests"] == 1


def test_given_a_flaky_token_endpoint_then_the_token_request_is_retried(emulator: Any) -> None:
    # Each fetch fails with a chance of 0.3 per attempt; ten attempts make a lost fetch (0.3^10) negligible.
    emulator.set_faults(token_error_rate=0.3)
    connection = _connection(emulator)

    async def test(tokens: TokenProvider) -> int:
        for _ in range(5):
            await tokens.get(connection)
            await tokens.invalidate(connection, await tokens.get(connection))
        return tokens.requests_sent

    sent = _with_provider(test, policy=RetryPolicy(attempts=10, budget_s=10, initial_s=0.01, max_s=0.05))
    assert sent >= 5  # some answered 5xx and were retried; all five rounds got a token


def test_given_a_token_endpoint_that_stays_down_then_the_budget_ends_it(emulator: Any) -> None:
    emulator.set_faults(token_error_rate=1.0)
    connection = _connection(emulator)

    async def test(tokens: TokenProvider) -> None:
        await tokens.get(connection)

    with pytest.raises(TransientError) as caught:
        _with_provider(test)
    assert caught.value.retryable and caught.value.http_status in (500, 502, 503)
    assert emulator.counters()["token_requests"] == FAST.attempts


@pytest.mark.parametrize(("lifetime", "margin"), [(86400, 300), (3600, 300), (60, 12), (5, 1)])
def test_the_renewal_margin_suits_short_and_long_lifetimes(lifetime: float, margin: float) -> None:
    assert renew_margin_s(lifetime, 300) == margin


def test_given_a_token_request_then_the_secret_and_its_basic_encoding_are_the_connections_secrets() -> None:
    connection = Connection(
        name="builder-test",
        endpoint_url="https://api.cloud.hypatos.ai/v2",
        client_id="builder-client",
        client_secret=SecretStr("builder-secret-value"),
        scope="documents.read",
    )

    request = token_request(connection)

    basic = "Basic " + base64.b64encode(b"builder-client:builder-secret-value").decode()
    assert request.headers["Authorization"] == basic
    assert request.form == {"grant_type": "client_credentials", "scope": "documents.read"}
    assert request.url == "https://api.cloud.hypatos.ai/v2/auth/token"
    assert "builder-secret-value" not in repr(request) and basic not in repr(request)
    echoed = f"secret builder-secret-value, header {basic}"
    scrubbed = secret_registry.scrub_scope(echoed, "builder-test")
    assert scrubbed == f"secret {REDACTED}, header Basic {REDACTED}"


def test_given_a_fetched_token_then_it_is_a_secret_of_its_connection(emulator: Any) -> None:
    connection = _connection(emulator)

    async def test(tokens: TokenProvider) -> str:
        return (await tokens.get(connection)).value

    token = _with_provider(test)
    assert secret_registry.scrub_scope(f"Bearer {token}", connection.name) == f"Bearer {REDACTED}"
