"""`HypatosClient.call` over real HTTP to a scripted server: token refresh, retries, waits, budgets.

The sleep is injected, so each test sees the waits the retry policy asked for without waiting them.
"""

from __future__ import annotations

import asyncio

import aiohttp
from pydantic import SecretStr

from tests.support.scripted import Answer, ScriptedServer
from worker.client import HypatosClient
from worker.connections import Connection
from worker.errors import HypatosError, PermanentError, TransientError
from worker.retry import RetryPolicy
from worker.tokens import TokenProvider
from worker.transport import ApiRequest, ApiResponse, Transport

POLICY = RetryPolicy(attempts=4, budget_s=30, initial_s=0.5, max_s=10, inline_wait_max_s=5)
GET = ApiRequest("GET", "/documents/abc")


def call(
    server: ScriptedServer,
    policy: RetryPolicy = POLICY,
    *,
    request: ApiRequest = GET,
    replay_safe: bool = True,
) -> tuple[ApiResponse | HypatosError, list[float]]:
    """One `call` to `server`; the response or the error raised, and the waits asked for."""
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    async def run() -> ApiResponse | HypatosError:
        connection = Connection(
            name="main", endpoint_url=server.base_url, client_id="c", client_secret=SecretStr("client-secret")
        )
        async with aiohttp.ClientSession() as session:
            transport = Transport(session)
            tokens = TokenProvider(transport, policy=POLICY)
            client = HypatosClient(transport, tokens, policy=policy, sleep=sleep)
            try:
                return await client.call(connection, request, replay_safe=replay_safe)
            except HypatosError as exc:
                return exc

    return asyncio.run(run()), waits


def test_given_a_401_then_the_token_is_renewed_once_and_the_call_sent_again() -> None:
    with ScriptedServer(Answer(401, {"title": "Unauthorized"})) as server:
        response, waits = call(server)
    assert isinstance(response, ApiResponse) and response.status == 200 and response.attempts == 2
    assert [r.authorization for r in server.received] == ["Bearer token-0001", "Bearer token-0002"]
    assert server.tokens_issued == 2 and waits == []


def test_given_a_401_for_the_fresh_token_too_then_auth_failed_without_more_tries() -> None:
    with ScriptedServer(Answer(401), Answer(401)) as server:
        error, waits = call(server)
    assert isinstance(error, PermanentError) and error.code == "auth_failed" and error.attempts == 2
    assert error.http_status == 401 and len(server.received) == 2 and waits == []


def test_given_server_errors_then_the_call_is_retried_with_backoff_waits() -> None:
    with ScriptedServer(Answer(503), Answer(500)) as server:
        response, waits = call(server)
    assert isinstance(response, ApiResponse) and response.status == 200 and response.attempts == 3
    assert len(waits) == 2 and all(0 <= wait <= POLICY.max_s for wait in waits)


def test_given_a_rate_limit_with_a_reset_then_the_wait_is_the_servers() -> None:
    with ScriptedServer(Answer(429, headers={"x-ratelimit-reset": "2"})) as server:
        response, waits = call(server)
    assert isinstance(response, ApiResponse) and response.attempts == 2
    assert len(waits) == 1 and 2 <= waits[0] <= 2.25


def test_given_retry_after_on_a_server_error_then_the_wait_is_the_servers() -> None:
    with ScriptedServer(Answer(503, headers={"Retry-After": "3"})) as server:
        _, waits = call(server)
    assert len(waits) == 1 and 3 <= waits[0] <= 3.25


def test_given_a_wait_longer_than_the_inline_limit_then_the_call_ends_with_the_hint() -> None:
    with ScriptedServer(Answer(429, headers={"x-ratelimit-reset": "20"})) as server:
        error, waits = call(server)
    assert isinstance(error, TransientError) and error.code == "rate_limited" and error.retry_after_s == 20
    assert error.attempts == 1 and waits == []


def test_given_a_wait_past_the_time_budget_then_the_call_ends() -> None:
    policy = RetryPolicy(attempts=4, budget_s=1, initial_s=0.5, max_s=10, inline_wait_max_s=5)
    with ScriptedServer(Answer(503, headers={"Retry-After": "2"})) as server:
        error, waits = call(server, policy)
    assert isinstance(error, TransientError) and error.code == "server_error" and waits == []


def test_given_failures_past_the_attempt_limit_then_the_last_error_is_raised() -> None:
    policy = RetryPolicy(attempts=3, budget_s=30, initial_s=0.01, max_s=0.1)
    with ScriptedServer(*[Answer(502)] * 5) as server:
        error, waits = call(server, policy)
    assert isinstance(error, TransientError) and error.code == "server_error" and error.retryable
    assert error.attempts == 3 and len(server.received) == 3 and len(waits) == 2


def test_given_a_lost_connection_then_a_replay_safe_call_is_sent_again() -> None:
    # A POST: aiohttp itself sends an idempotent GET again once when a reused connection drops.
    transfer = ApiRequest("POST", "/documents/abc/transfer", body=b'{"successful": true}')
    with ScriptedServer(Answer(drop=True)) as server:
        response, waits = call(server, request=transfer)
    assert isinstance(response, ApiResponse) and response.attempts == 2 and len(server.received) == 2
    assert len(waits) == 1


def test_given_a_lost_connection_then_a_creating_call_is_not_sent_again() -> None:
    with ScriptedServer(Answer(drop=True)) as server:
        error, waits = call(server, request=ApiRequest("POST", "/files", body=b"%PDF"), replay_safe=False)
    assert isinstance(error, TransientError) and error.code == "connection_lost"
    assert error.attempts == 1 and len(server.received) == 1 and waits == []


def test_given_a_server_error_then_a_creating_call_is_retried_as_nothing_was_created() -> None:
    with ScriptedServer(Answer(503)) as server:
        response, _ = call(server, request=ApiRequest("POST", "/projects", body=b"{}"), replay_safe=False)
    assert isinstance(response, ApiResponse) and response.attempts == 2


def test_given_a_client_error_then_it_is_not_retried_and_carries_hypatos_words() -> None:
    body = {"title": "Bad Request", "detail": "limit must be at most 50"}
    with ScriptedServer(Answer(400, body)) as server:
        error, waits = call(server)
    assert isinstance(error, PermanentError) and error.code == "bad_request" and error.data == body
    assert "Bad Request: limit must be at most 50" in error.message and waits == []


def test_given_a_validation_answer_then_its_detail_list_is_in_the_message() -> None:
    body = {"detail": [{"loc": ["body", "name"], "msg": "field required"}, {"msg": "too long"}]}
    with ScriptedServer(Answer(422, body)) as server:
        error, _ = call(server)
    assert isinstance(error, PermanentError) and error.code == "unprocessable_entity"
    assert "field required; too long" in error.message


def test_given_a_text_error_page_then_its_start_is_in_the_message() -> None:
    with ScriptedServer(Answer(418, text="I am a teapot")) as server:
        error, _ = call(server)
    assert isinstance(error, PermanentError) and error.code == "rejected"
    assert "I am a teapot" in error.message and error.data == "I am a teapot"


def test_given_headers_and_a_body_then_they_are_sent_with_the_token() -> None:
    request = ApiRequest(
        "POST",
        "/documents/abc/title",
        headers={"X-Hy-Filename": "a.pdf"},
        body=b"title",
        content_type="text/plain; charset=utf-8",
        query=(("a", "1"),),
    )
    with ScriptedServer(Answer(204)) as server:
        response, _ = call(server, request=request)
    assert isinstance(response, ApiResponse) and response.status == 204 and response.decoded() is None
    assert server.received[0].method == "POST" and server.received[0].path == "/v2/documents/abc/title"
