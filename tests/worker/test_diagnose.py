"""Test Connection against the emulator over real HTTP, plus scripted answers it cannot give (TLS, 401)."""

from __future__ import annotations

import asyncio
import base64
import json
import socket
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from pydantic import SecretStr

from tests.support.echo_endpoint import ISSUED_TOKEN, Echo, EchoingTokenEndpoint
from worker import diagnose
from worker.connections import Connection
from worker.diagnose import (
    API_CALL,
    CHECK_NAMES,
    CREDENTIALS_ACCEPTED,
    ENDPOINT_REACHABLE,
    FAILED,
    LATENCY,
    OK,
    RATE_LIMIT_HEADROOM,
    SCOPES,
    SKIPPED,
    TLS,
    WARNING,
    Check,
    ConnectionReport,
)
from worker.errors import HypatosError, PermanentError, TransientError
from worker.logging import REDACTED
from worker.settings import WorkerSettings
from worker.tools.diagnose_cli import format_report, run_test_connections
from worker.transport import ApiResponse, Transport

SECRET = "test-secret"


def _connection(
    endpoint_url: str, *, client_id: str = "test-client", secret: str = SECRET, **fields: Any
) -> Connection:
    return Connection(
        name="main", endpoint_url=endpoint_url, client_id=client_id, client_secret=SecretStr(secret), **fields
    )


class RecordingTransport(Transport):
    """The real transport, keeping every response body so tests can look for the token in the output."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        super().__init__(session)
        self.bodies: list[bytes] = []

    async def send(self, method: str, url: str, **options: Any) -> ApiResponse:
        response = await super().send(method, url, **options)
        self.bodies.append(response.body)
        return response


def _run(connection: Connection, **options: Any) -> tuple[ConnectionReport, list[bytes]]:
    async def go() -> tuple[ConnectionReport, list[bytes]]:
        async with aiohttp.ClientSession() as session:
            transport = RecordingTransport(session)
            report = await diagnose.check_connection(connection, transport, **options)
            return report, transport.bodies

    return asyncio.run(go())


def _test(connection: Connection, **options: Any) -> ConnectionReport:
    return _run(connection, **options)[0]


def _statuses(report: ConnectionReport) -> dict[str, str]:
    return {check.name: check.status for check in report.checks}


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ---- against the emulator -----------------------------------------------------------------------


def test_given_a_good_connection_then_it_is_usable_and_every_check_passes(emulator: Any) -> None:
    report = _test(_connection(emulator.base_url))

    assert report.usable
    assert [check.name for check in report.checks] == list(CHECK_NAMES)
    assert _statuses(report) == {name: OK for name in CHECK_NAMES} | {TLS: SKIPPED}
    assert report.check(TLS).detail == "plain http (custom endpoint)"
    assert "GET /documents?limit=1" in report.check(API_CALL).detail
    assert all(check.fix is None for check in report.checks)
    assert emulator.counters()["token_requests"] == 1


def test_given_a_wrong_secret_then_credentials_fail_and_later_checks_are_skipped(emulator: Any) -> None:
    report = _test(_connection(emulator.base_url, secret="wrong-secret"))

    assert not report.usable
    statuses = _statuses(report)
    assert statuses[ENDPOINT_REACHABLE] == OK
    assert statuses[CREDENTIALS_ACCEPTED] == FAILED
    assert all(statuses[name] == SKIPPED for name in CHECK_NAMES[3:])
    credentials = report.check(CREDENTIALS_ACCEPTED)
    assert "401" in credentials.detail
    assert credentials.fix is not None and "client_secret" in credentials.fix
    assert emulator.counters()["token_requests"] == 1  # one attempt, no retries


def test_given_an_unreachable_endpoint_then_reachability_fails_and_the_rest_is_skipped() -> None:
    report = _test(_connection(f"http://127.0.0.1:{_closed_port()}/v2"))

    assert not report.usable
    reachable = report.check(ENDPOINT_REACHABLE)
    assert reachable.status == FAILED
    assert "network_error" in reachable.detail
    assert reachable.fix is not None and "endpoint_url" in reachable.fix and "firewall" in reachable.fix
    assert all(check.status == SKIPPED for check in report.checks[1:])


def test_given_a_configured_scope_not_granted_then_scopes_warn_and_name_it(emulator: Any) -> None:
    emulator.add_client("reader", "reader-secret", scopes="documents.read")
    connection = _connection(
        emulator.base_url, client_id="reader", secret="reader-secret", scope="documents.read files.write"
    )

    report = _test(connection)

    assert report.usable
    scopes = report.check(SCOPES)
    assert scopes.status == WARNING
    assert "files.write" in scopes.detail and "documents.read" in scopes.detail
    assert scopes.fix is not None and "grant files.write" in scopes.fix and "`scope`" in scopes.fix
    assert report.check(API_CALL).status == OK


def test_given_no_configured_read_scope_granted_then_scopes_fail(emulator: Any) -> None:
    emulator.add_client("writer", "writer-secret", scopes="files.write")
    connection = _connection(
        emulator.base_url, client_id="writer", secret="writer-secret", scope="documents.read files.write"
    )

    report = _test(connection)

    assert not report.usable
    assert report.check(SCOPES).status == FAILED
    assert "documents.read" in report.check(SCOPES).detail
    assert report.check(API_CALL).status == SKIPPED


def test_given_only_write_scopes_then_the_read_call_is_skipped_and_the_connection_is_usable(
    emulator: Any,
) -> None:
    emulator.add_client("writer", "writer-secret", scopes="files.write documents.write")

    report = _test(_connection(emulator.base_url, client_id="writer", secret="writer-secret"))

    assert report.usable
    assert report.check(SCOPES).status == OK
    assert "documents.write files.write" in report.check(SCOPES).detail
    assert report.check(API_CALL).status == SKIPPED
    assert "no read scope" in report.check(API_CALL).detail
    assert emulator.counters()["token_requests"] == 1


def test_given_only_companies_read_then_the_companies_list_is_called(emulator: Any) -> None:
    emulator.add_client("companies", "companies-secret", scopes="companies.read")

    report = _test(_connection(emulator.base_url, client_id="companies", secret="companies-secret"))

    assert report.usable
    assert "GET /companies" in report.check(API_CALL).detail


def test_given_a_tight_rate_limit_then_low_headroom_warns(emulator: Any) -> None:
    emulator.add_client("tight", "tight-secret", rate_limit=2, rate_window_s=60)

    report = _test(_connection(emulator.base_url, client_id="tight", secret="tight-secret"))

    assert report.usable
    headroom = report.check(RATE_LIMIT_HEADROOM)
    assert headroom.status == WARNING
    assert headroom.detail.startswith("0 of 2 requests left")
    assert headroom.fix is not None and "concurrency" in headroom.fix


def test_given_a_spent_rate_limit_then_the_failure_names_the_reset_time(emulator: Any) -> None:
    emulator.add_client("tight", "tight-secret", rate_limit=1, rate_window_s=60)
    connection = _connection(emulator.base_url, client_id="tight", secret="tight-secret")

    first = _test(connection)
    second = _test(connection)

    assert first.check(CREDENTIALS_ACCEPTED).status == OK
    assert first.check(API_CALL).status == FAILED
    assert "429" in first.check(API_CALL).detail and "resets in" in first.check(API_CALL).detail
    assert not first.usable
    credentials = second.check(CREDENTIALS_ACCEPTED)
    assert credentials.status == FAILED
    assert "429" in credentials.detail and "resets in" in credentials.detail


def test_given_a_failing_token_endpoint_then_credentials_fail_with_a_retry_later_fix(emulator: Any) -> None:
    emulator.set_faults(token_error_rate=1.0)

    report = _test(_connection(emulator.base_url))

    assert not report.usable
    credentials = report.check(CREDENTIALS_ACCEPTED)
    assert credentials.status == FAILED
    assert "HTTP 50" in credentials.detail
    assert credentials.fix is not None and "later" in credentials.fix
    assert emulator.counters()["token_requests"] == 1


def test_given_a_slow_clock_then_latency_warns(emulator: Any) -> None:
    ticks = iter(range(0, 100, 3))  # every exchange appears to take 3 s

    def clock() -> float:
        return float(next(ticks))

    report = _test(_connection(emulator.base_url), clock=clock)

    latency = report.check(LATENCY)
    assert latency.status == WARNING
    assert "token request 3000 ms" in latency.detail and "GET /documents?limit=1 3000 ms" in latency.detail
    assert report.usable  # slow, but it works


def test_format_report_shows_every_check_with_a_mark_and_the_fixes(emulator: Any) -> None:
    report = _test(_connection(emulator.base_url, secret="wrong-secret"))

    text = format_report(report)

    lines = text.splitlines()
    assert lines[0] == "connection 'main': NOT usable"
    for name in CHECK_NAMES:
        assert any(name in line for line in lines)
    assert any(line.lstrip().startswith("[FAIL] credentials_accepted") for line in lines)
    fix_lines = [line for line in lines if line.lstrip().startswith("fix:")]
    assert len(fix_lines) == 1 and "client_secret" in fix_lines[0]
    assert fix_lines[0].startswith(" " * 9)


def test_to_dict_is_json_and_holds_neither_secret_nor_token(emulator: Any) -> None:
    report, bodies = _run(_connection(emulator.base_url))
    token = json.loads(bodies[0])["access_token"]

    payload = json.dumps(report.to_dict())

    assert json.loads(payload)["usable"] is True
    assert [check["name"] for check in json.loads(payload)["checks"]] == list(CHECK_NAMES)
    assert set(json.loads(payload)["checks"][0]) == {"name", "status", "detail", "fix"}
    for text in (payload, format_report(report)):
        assert SECRET not in text
        assert token not in text


# ---- scripted answers the emulator does not give ------------------------------------------------


class ScriptedTransport(Transport):
    """Answers each send with the next scripted response or raises the next scripted error."""

    def __init__(self, *script: ApiResponse | HypatosError) -> None:
        self._script = list(script)
        self.calls: list[tuple[str, str]] = []

    async def send(self, method: str, url: str, **options: Any) -> ApiResponse:
        self.calls.append((method, url))
        step = self._script.pop(0)
        if isinstance(step, BaseException):
            raise step
        return step


def _json(status: int, body: dict[str, Any], **headers: str) -> ApiResponse:
    return ApiResponse(status, {"content-type": "application/json", **headers}, json.dumps(body).encode())


TOKEN = _json(
    200,
    {
        "access_token": "scripted-token-value",
        "token_type": "Bearer",
        "expires_in": 3600,
        "scope": "documents.read",
    },
)
HTTPS = "https://api.cloud.hypatos.ai/v2"


def _scripted(
    connection: Connection, *script: ApiResponse | HypatosError, **options: Any
) -> ConnectionReport:
    return asyncio.run(diagnose.check_connection(connection, ScriptedTransport(*script), **options))


def test_given_https_and_a_good_exchange_then_tls_is_ok() -> None:
    report = _scripted(_connection(HTTPS), TOKEN, _json(200, {"data": []}))

    assert report.check(TLS).status == OK
    assert report.usable


def test_given_a_tls_error_then_tls_fails_with_a_ca_store_fix() -> None:
    error = PermanentError("the TLS handshake failed (ClientConnectorCertificateError)", code="tls_error")

    report = _scripted(_connection(HTTPS), error)

    assert report.check(ENDPOINT_REACHABLE).status == OK
    tls = report.check(TLS)
    assert tls.status == FAILED
    assert tls.fix is not None and "CA store" in tls.fix
    assert all(check.status == SKIPPED for check in report.checks[2:])
    assert not report.usable


def test_given_a_refused_fresh_token_then_the_api_call_fails_naming_the_environments() -> None:
    report = _scripted(_connection(HTTPS), TOKEN, _json(401, {"title": "Unauthorized", "status": 401}))

    api = report.check(API_CALL)
    assert api.status == FAILED
    assert "401" in api.detail and "Unauthorized" in api.detail
    assert api.fix is not None and "access_token_url" in api.fix
    assert not report.usable


def test_given_a_forbidden_read_then_the_api_call_fails_naming_the_scope() -> None:
    report = _scripted(_connection(HTTPS), TOKEN, _json(403, {"title": "Forbidden", "status": 403}))

    api = report.check(API_CALL)
    assert api.status == FAILED
    assert api.fix is not None and "documents.read" in api.fix


def test_given_a_network_error_on_the_read_then_the_api_call_fails() -> None:
    error = TransientError(
        "the connection to Hypatos failed mid-request (ServerDisconnectedError)", code="network_error"
    )

    report = _scripted(_connection(HTTPS), TOKEN, error)

    assert report.check(API_CALL).status == FAILED
    assert "network_error" in report.check(API_CALL).detail
    assert report.check(RATE_LIMIT_HEADROOM).status == SKIPPED  # the token answer had no x-ratelimit headers
    assert not report.usable


def test_given_a_token_answer_without_a_token_then_credentials_fail() -> None:
    report = _scripted(_connection(HTTPS), _json(200, {"hello": "proxy"}))

    assert report.check(CREDENTIALS_ACCEPTED).status == FAILED
    assert "access_token_url" in (report.check(CREDENTIALS_ACCEPTED).fix or "")


def test_given_a_server_that_never_answers_then_the_test_times_out() -> None:
    class Silent(Transport):
        def __init__(self) -> None:
            pass

        async def send(self, method: str, url: str, **options: Any) -> ApiResponse:
            await asyncio.sleep(10)
            raise AssertionError("unreachable")

    report = asyncio.run(diagnose.check_connection(_connection(HTTPS), Silent(), timeout_s=0.05))

    assert report.check(ENDPOINT_REACHABLE).status == FAILED
    assert "timeout" in report.check(ENDPOINT_REACHABLE).detail


def test_given_an_error_text_holding_the_secret_then_it_is_redacted() -> None:
    error = TransientError(f"boom {SECRET}", code="network_error")

    report = _scripted(_connection(HTTPS), error)

    assert SECRET not in json.dumps(report.to_dict())


def test_a_check_is_a_frozen_value() -> None:
    check = Check("latency", OK, "token request 3 ms")

    with pytest.raises(AttributeError):
        check.status = FAILED  # type: ignore[misc]


# ---- a token endpoint that echoes the credentials -----------------------------------------------

ECHO_CLIENT = "echo-client"
ECHO_SECRET = 'echo-"se/cret"-wörd-42'  # characters JSON escapes, and one outside ASCII
ECHO_BASIC = base64.b64encode(f"{ECHO_CLIENT}:{ECHO_SECRET}".encode()).decode()

ECHOES: dict[str, Echo] = {
    "the Authorization header": lambda sent: f"invalid client, Authorization: {sent.authorization}",
    "the decoded credentials": lambda sent: f"unknown client {sent.client_id}:{sent.client_secret}",
    "the header across the title's cut": lambda sent: "x" * 100 + f" {sent.authorization}",
}


def _leaks(text: str) -> list[str]:
    """Any form of the echo test's credentials found in `text`, a prefix of the Basic encoding included."""
    forms = {
        ECHO_SECRET,
        json.dumps(ECHO_SECRET)[1:-1],
        json.dumps(ECHO_SECRET, ensure_ascii=False)[1:-1],
        ECHO_BASIC,
        ECHO_BASIC[:8],
        ISSUED_TOKEN,
    }
    return sorted(form for form in forms if form in text)


def _echo_connection(base_url: str) -> Connection:
    return _connection(base_url, client_id=ECHO_CLIENT, secret=ECHO_SECRET)


@pytest.mark.parametrize("echoed", sorted(ECHOES))
def test_given_a_token_endpoint_echoing_the_credentials_then_the_report_holds_none_of_them(
    echoed: str,
) -> None:
    with EchoingTokenEndpoint(ECHOES[echoed]) as server:
        report = _test(_echo_connection(server.base_url))

    credentials = report.check(CREDENTIALS_ACCEPTED)
    assert credentials.status == FAILED and "401" in credentials.detail
    assert REDACTED in credentials.detail  # the echo was there, and was hidden
    assert _leaks(json.dumps(report.to_dict())) == []
    assert _leaks(json.dumps(report.to_dict(), ensure_ascii=False)) == []
    assert _leaks(format_report(report)) == []


def test_given_an_api_echoing_the_bearer_token_then_the_report_does_not_hold_it() -> None:
    with EchoingTokenEndpoint(ECHOES["the Authorization header"], issue_token=True) as server:
        report = _test(_echo_connection(server.base_url))

    api = report.check(API_CALL)
    assert api.status == FAILED and f"Bearer {REDACTED}" in api.detail
    assert _leaks(json.dumps(report.to_dict())) == [] and _leaks(format_report(report)) == []


@pytest.mark.parametrize("as_json", [False, True])
def test_given_an_echoing_token_endpoint_then_the_cli_prints_no_credentials(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], as_json: bool
) -> None:
    with EchoingTokenEndpoint(ECHOES["the Authorization header"]) as server:
        path = tmp_path / "connections.toml"
        path.write_text(
            f'[connections.echo]\nendpoint_url = "{server.base_url}"\n'
            f'client_id = "{ECHO_CLIENT}"\nclient_secret = {json.dumps(ECHO_SECRET)}\n',
            encoding="utf-8",
        )
        settings = WorkerSettings(connections_file=path, allow_custom_endpoints=True)

        status = run_test_connections(settings, ("echo",), test_all=False, as_json=as_json)

    printed = capsys.readouterr()
    assert status == 1 and "credentials_accepted" in printed.out
    assert _leaks(printed.out + printed.err) == []
