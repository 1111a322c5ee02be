"""The classifier: one row per status or exception kind."""

from __future__ import annotations

import aiohttp
import pytest

from worker.classify import (
    TOKEN_STATUS,
    Action,
    classify_exception,
    classify_status,
    retry_after_s,
    token_request_outcome,
)
from worker.refusals import api_refusal, token_refusal


@pytest.mark.parametrize(
    ("status", "action", "code"),
    [
        (200, Action.SUCCESS, None),
        (202, Action.SUCCESS, None),
        (204, Action.SUCCESS, None),
        (400, Action.FAIL, "bad_request"),
        (401, Action.REFRESH_TOKEN_THEN_RETRY, "auth_failed"),
        (403, Action.FAIL, "forbidden"),
        (404, Action.FAIL, "not_found"),
        (418, Action.FAIL, "rejected"),
        (422, Action.FAIL, "unprocessable_entity"),
        (429, Action.RATE_LIMITED, "rate_limited"),
        (500, Action.RETRY, "server_error"),
        (502, Action.RETRY, "server_error"),
        (503, Action.RETRY, "server_error"),
        (302, Action.FAIL, "unexpected_status"),
    ],
)
def test_given_an_api_status_then_the_resolution_is_as_tabled(status: int, action: Action, code: str) -> None:
    resolution = classify_status(status)
    assert resolution.action is action
    assert resolution.code == code


@pytest.mark.parametrize(
    ("status", "action", "code"),
    [
        (400, Action.FAIL, "auth_failed"),
        (401, Action.FAIL, "auth_failed"),
        (404, Action.FAIL, "token_endpoint_not_found"),
        (429, Action.RATE_LIMITED, "rate_limited"),
        (503, Action.RETRY, "server_error"),
    ],
)
def test_given_a_token_endpoint_status_then_refused_credentials_are_final(
    status: int, action: Action, code: str
) -> None:
    resolution = classify_status(status, table=TOKEN_STATUS)
    assert (resolution.action, resolution.code) == (action, code)


@pytest.mark.parametrize(
    ("error", "retryable", "code"),
    [
        (TimeoutError(), True, "timeout"),
        (aiohttp.ServerDisconnectedError(), True, "connection_lost"),
        (aiohttp.ClientConnectorError(None, OSError(111, "refused")), True, "network_error"),  # type: ignore[arg-type]
        (aiohttp.ConnectionTimeoutError(), True, "network_error"),
        (aiohttp.SocketTimeoutError(), True, "timeout"),
        (aiohttp.ClientPayloadError("cut"), True, "connection_lost"),
    ],
)
def test_given_a_transport_exception_then_it_is_classified(
    error: Exception, retryable: bool, code: str
) -> None:
    resolution = classify_exception(error)
    assert (resolution.retryable, resolution.code) == (retryable, code)


def test_given_a_foreign_exception_then_it_is_not_swallowed() -> None:
    with pytest.raises(KeyError):
        classify_exception(KeyError("x"))


def test_given_429_then_the_wait_comes_from_ratelimit_reset_or_retry_after() -> None:
    assert retry_after_s(429, {"x-ratelimit-reset": "3"}) == 3.0
    assert retry_after_s(429, {"retry-after": "5", "x-ratelimit-reset": "3"}) == 5.0
    assert retry_after_s(503, {"x-ratelimit-reset": "3"}) is None
    assert retry_after_s(503, {"retry-after": "2"}) == 2.0
    assert retry_after_s(429, {"x-ratelimit-reset": "soon"}) is None


@pytest.mark.parametrize(
    ("status", "outcome"),
    [(200, "ok"), (400, "refused"), (401, "refused"), (403, "error"), (429, "error"), (503, "error")],
)
def test_given_a_token_endpoint_status_then_its_metrics_outcome_is_as_tabled(
    status: int, outcome: str
) -> None:
    assert token_request_outcome(status) == outcome


@pytest.mark.parametrize(
    ("status", "meaning", "in_fix"),
    [
        (400, "the token request was refused", "`scope` names at least one scope"),
        (401, "the client credentials were refused", "client_secret"),
        (403, "the requested scope was refused", "remove scopes"),
        (404, "no token endpoint there", "access_token_url"),
        (429, "the rate limit is spent, the window resets in 7 s", "test again after the reset"),
        (500, "credentials could not be checked", "server error"),
        (503, "credentials could not be checked", "server error"),
        (418, "unexpected answer", "access_token_url"),
    ],
)
def test_given_a_token_endpoint_refusal_then_test_connection_says_what_it_means_and_what_to_fix(
    status: int, meaning: str, in_fix: str
) -> None:
    shown_meaning, fix = token_refusal(status).render(reset="7 s")
    assert shown_meaning == meaning
    assert in_fix in fix


@pytest.mark.parametrize(
    ("status", "meaning", "in_fix"),
    [
        (401, "the API refused the fresh token", "same Hypatos environment"),
        (403, "the token lacks documents.read", "grant documents.read"),
        (404, "no such API there", "/v2"),
        (429, "the rate limit is spent, the window resets in 7 s", "test again after the reset"),
        (502, "", "server error"),
        (418, "unexpected answer", "endpoint_url"),
    ],
)
def test_given_an_api_refusal_then_test_connection_says_what_it_means_and_what_to_fix(
    status: int, meaning: str, in_fix: str
) -> None:
    shown_meaning, fix = api_refusal(status).render(scope="documents.read", reset="7 s")
    assert shown_meaning == meaning
    assert in_fix in fix
