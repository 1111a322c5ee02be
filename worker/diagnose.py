"""Test Connection: try a connection step by step and say, for each step, what to fix.

`check_connection` makes one token request (the one `worker.tokens` builds) and, when it gets a
token, one cheap read call.  Each step becomes a `Check`; the `ConnectionReport` drives
``hypatos-worker test-connection`` (`worker.tools.diagnose_cli` prints it) and the ``testConnection``
queue operation.  Nothing is retried, so the report shows what happened on this attempt, not what a
retrying client would eventually get.  The token obtained is used only here and never cached.

What a status means and the fix to show come from the tables of `worker.refusals`; whether an answer
succeeded, from `worker.classify`.  Every text in a report is built from that fixed wording, status
codes, scope names, URLs without credentials, transport error codes and messages, and the ``title``
of an error body; all of it is scrubbed of the connection's client secret, its Basic encoding and
access tokens (`secret_registry`), so a token endpoint that echoes the credentials leaks nothing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import structlog

from worker import refusals
from worker.classify import API_STATUS, TOKEN_STATUS, Action, Resolution, classify_status, retry_after_s
from worker.connections import Connection
from worker.errors import ErrorCode, HypatosError
from worker.logging import secret_registry
from worker.tokens import token_request
from worker.transport import ApiResponse, Transport

log = structlog.get_logger(__name__)

OK = "ok"
WARNING = "warning"
FAILED = "failed"
SKIPPED = "skipped"

ENDPOINT_REACHABLE = "endpoint_reachable"
TLS = "tls"
CREDENTIALS_ACCEPTED = "credentials_accepted"
SCOPES = "scopes"
API_CALL = "api_call"
RATE_LIMIT_HEADROOM = "rate_limit_headroom"
LATENCY = "latency"

#: The order checks appear in every report.
CHECK_NAMES = (ENDPOINT_REACHABLE, TLS, CREDENTIALS_ACCEPTED, SCOPES, API_CALL, RATE_LIMIT_HEADROOM, LATENCY)

#: Cheap reads, most useful first: (scope, path below the endpoint URL, query).
READ_CALLS: tuple[tuple[str, str, tuple[tuple[str, str], ...]], ...] = (
    ("documents.read", "/documents", (("limit", "1"),)),
    ("projects.read", "/projects", (("limit", "1"),)),
    ("companies.read", "/companies", ()),
)

#: Below this share of the quota left, the headroom check warns.
HEADROOM_WARNING_SHARE = 0.10
#: Above this many milliseconds for one exchange, the latency check warns.
SLOW_MS = 2000.0
#: Upper bound for each exchange, so a black-holed address cannot hang the test.
DEFAULT_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Check:
    """One step of the test: what was observed and, for a failure or warning, what to change."""

    name: str
    status: str
    detail: str
    fix: str | None = None


@dataclass(frozen=True)
class ConnectionReport:
    """The outcome of testing one connection; `usable` decides the CLI's exit code."""

    connection: str
    usable: bool
    checks: tuple[Check, ...]
    #: When the test ran: ISO 8601, UTC, to the second.
    checked_at: str

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types only, for ``--json`` and the queue operation's result."""
        return {
            "connection": self.connection,
            "usable": self.usable,
            "checked_at": self.checked_at,
            "checks": [asdict(check) for check in self.checks],
        }

    def check(self, name: str) -> Check:
        """The check called `name` (every report has all of `CHECK_NAMES`)."""
        return next(check for check in self.checks if check.name == name)


@dataclass(frozen=True)
class _Exchange:
    """One HTTP exchange as the test saw it: a response or a transport error, and how long it took."""

    url: str
    elapsed_ms: float
    response: ApiResponse | None = None
    error: HypatosError | None = None


@dataclass(frozen=True)
class _Grant:
    """What the token endpoint handed out; `scopes` is None when it did not list them."""

    token: str
    scopes: frozenset[str] | None


# ---- the exchanges ------------------------------------------------------------------------------


async def _timed(
    clock: Callable[[], float], timeout_s: float, url: str, exchange: Awaitable[ApiResponse]
) -> _Exchange:
    """Await one exchange, timed; transport errors and timeouts are returned, not raised, to be reported."""
    started = clock()
    try:
        async with asyncio.timeout(timeout_s):
            response = await exchange
    except HypatosError as exc:
        return _Exchange(url, _ms(clock() - started), error=exc)
    except TimeoutError:
        error = HypatosError(f"no answer within {timeout_s:g} s", code=ErrorCode.TIMEOUT)
        return _Exchange(url, _ms(clock() - started), error=error)
    return _Exchange(url, _ms(clock() - started), response=response)


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


async def _request_token(
    connection: Connection, transport: Transport, clock: Callable[[], float], timeout_s: float
) -> _Exchange:
    """The request `worker.tokens` makes, sent once, so the test exercises the real path."""
    request = token_request(connection)
    return await _timed(clock, timeout_s, request.url, request.send(transport))


async def _read_call(
    connection: Connection,
    transport: Transport,
    grant: _Grant,
    call: tuple[str, str, tuple[tuple[str, str], ...]],
    clock: Callable[[], float],
    timeout_s: float,
) -> _Exchange:
    _scope, path, query = call
    url = connection.endpoint_url + path
    headers = {"Accept": "application/json", "Authorization": f"Bearer {grant.token}"}
    return await _timed(clock, timeout_s, url, transport.send("GET", url, headers=headers, params=query))


# ---- reading the answers ------------------------------------------------------------------------


def _display_url(url: str) -> str:
    """The URL without user info or query, fit for a report."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def _error_summary(error: HypatosError) -> str:
    return f"{error.message} [{error.code}]"


def _scrubbed(text: str, connection: Connection) -> str:
    """`text` without the connection's secrets (client secret, Basic encoding) or any known token."""
    return secret_registry.scrub(secret_registry.scrub_scope(text, connection.name))


def _problem_title(response: ApiResponse, connection: Connection) -> str:
    """The ``title`` of an error body, if any, cut short: it says which refusal it was.

    Scrubbed before it is cut, so an echoed secret cut in half cannot slip past the scrubbing.
    """
    body = response.decoded()
    title = body.get("title") if isinstance(body, dict) else None
    return f": {_scrubbed(str(title), connection)[:120]}" if title else ""


def _reset_s(response: ApiResponse) -> str:
    wait = retry_after_s(response.status, response.headers)
    return f"{wait:g} s" if wait is not None else "an unknown time"


def _granted(response: ApiResponse) -> _Grant | None:
    """The token and its scopes from a 200 answer, or None when the body holds no token."""
    body = response.decoded()
    token = body.get("access_token") if isinstance(body, dict) else None
    if not isinstance(token, str) or not token:
        return None
    # Process-wide only: a connection's scope keeps the tokens its requests use, which this one is not.
    secret_registry.add(token)
    scope = body.get("scope")
    return _Grant(token, frozenset(scope.split()) if isinstance(scope, str) else None)


def _header_int(headers: Mapping[str, str], name: str) -> int | None:
    """The leading integer of a header such as ``10, 10;w=1``, or None."""
    raw = headers.get(name, "").strip()
    digits = ""
    for char in raw:
        if not char.isdigit():
            break
        digits += char
    return int(digits) if digits else None


# ---- one function per check ---------------------------------------------------------------------


def _skipped(names: tuple[str, ...], reason: str) -> list[Check]:
    return [Check(name, SKIPPED, f"not run: {reason}") for name in names]


def _reachable_check(exchange: _Exchange) -> Check:
    """A TLS failure still proves the host answered; only other transport errors mean unreachable."""
    url = _display_url(exchange.url)
    if exchange.response is not None:
        return Check(
            ENDPOINT_REACHABLE, OK, f"token endpoint {url} answered (HTTP {exchange.response.status})"
        )
    assert exchange.error is not None
    if exchange.error.code == ErrorCode.TLS_ERROR:
        return Check(ENDPOINT_REACHABLE, OK, f"connected to {url}, but the TLS handshake failed")
    return Check(
        ENDPOINT_REACHABLE,
        FAILED,
        f"could not reach the token endpoint {url}: {_error_summary(exchange.error)}",
        refusals.NETWORK_FIX,
    )


def _tls_check(exchange: _Exchange) -> Check:
    if urlsplit(exchange.url).scheme != "https":
        return Check(TLS, SKIPPED, "plain http (custom endpoint)")
    if exchange.error is not None and exchange.error.code == ErrorCode.TLS_ERROR:
        return Check(TLS, FAILED, f"TLS handshake failed: {_error_summary(exchange.error)}", refusals.TLS_FIX)
    if exchange.response is None:
        return Check(TLS, SKIPPED, "not run: the token endpoint could not be reached")
    return Check(TLS, OK, "TLS handshake with the token endpoint succeeded")


def _succeeded(response: ApiResponse, table: Mapping[int, Resolution]) -> bool:
    return classify_status(response.status, table=table).action is Action.SUCCESS


def _credentials_check(response: ApiResponse, connection: Connection) -> tuple[Check, _Grant | None]:
    """Judge the token endpoint's answer; only a success with an access token yields a grant."""
    status = response.status
    if _succeeded(response, TOKEN_STATUS):
        grant = _granted(response)
        if grant is not None:
            return Check(CREDENTIALS_ACCEPTED, OK, f"token issued (HTTP {status})"), grant
        detail = f"HTTP {status} without an access_token"
        return Check(CREDENTIALS_ACCEPTED, FAILED, detail, refusals.NO_ACCESS_TOKEN_FIX), None
    seen = f"the token endpoint answered HTTP {status}{_problem_title(response, connection)}"
    meaning, fix = refusals.token_refusal(status).render(reset=_reset_s(response))
    return Check(CREDENTIALS_ACCEPTED, FAILED, f"{seen}; {meaning}", fix), None


def _is_read(scope: str) -> bool:
    return scope.endswith(".read")


def _scopes_check(connection: Connection, granted: frozenset[str] | None) -> Check:
    """Missing scopes are a warning, unless every read scope the connection asked for is missing.

    A missing scope only breaks the operations that need it (they get 403), so the connection stays
    usable; but a connection configured to read that can read nothing is not what was set up.
    """
    configured = connection.scopes
    if granted is None:
        shown = " ".join(sorted(configured)) or "none configured"
        return Check(SCOPES, OK, f"the token endpoint did not list granted scopes (configured: {shown})")
    if not configured:
        return Check(SCOPES, OK, f"no scope configured; granted: {' '.join(sorted(granted)) or 'none'}")
    missing = configured - granted
    if not missing:
        return Check(SCOPES, OK, f"all configured scopes granted: {' '.join(sorted(configured))}")
    names = " ".join(sorted(missing))
    them = "them" if len(missing) > 1 else "it"
    detail = (
        f"configured but not granted: {names} (operations needing {them} will get 403); "
        f"granted: {' '.join(sorted(granted)) or 'none'}"
    )
    fix = refusals.SCOPES_FIX.format(names=names, them=them)
    return Check(SCOPES, FAILED if _nothing_left(configured, granted) else WARNING, detail, fix)


def _nothing_left(configured: frozenset[str], granted: frozenset[str]) -> bool:
    """True when none of the configured read scopes, or none of the configured scopes at all, was granted."""
    configured_reads = {scope for scope in configured if _is_read(scope)}
    if configured_reads and not configured_reads & granted:
        return True
    return not configured & granted


def _choose_read(
    connection: Connection, granted: frozenset[str] | None
) -> tuple[str, str, tuple[tuple[str, str], ...]] | None:
    """The first cheap read the token may make; with no scope information, assume documents.read."""
    available = granted if granted is not None else connection.scopes
    if granted is None and not available:
        return READ_CALLS[0]
    return next((call for call in READ_CALLS if call[0] in available), None)


def _call_label(call: tuple[str, str, tuple[tuple[str, str], ...]]) -> str:
    _scope, path, query = call
    return "GET " + path + ("?" + "&".join(f"{k}={v}" for k, v in query) if query else "")


def _api_check(
    call: tuple[str, str, tuple[tuple[str, str], ...]], exchange: _Exchange, connection: Connection
) -> Check:
    label = _call_label(call)
    if exchange.error is not None:
        fix = refusals.TLS_FIX if exchange.error.code == ErrorCode.TLS_ERROR else refusals.NETWORK_FIX
        return Check(API_CALL, FAILED, f"{label} failed: {_error_summary(exchange.error)}", fix)
    assert exchange.response is not None
    status = exchange.response.status
    if _succeeded(exchange.response, API_STATUS):
        return Check(API_CALL, OK, f"{label} answered HTTP {status} ({call[0]})")
    seen = f"{label} answered HTTP {status}{_problem_title(exchange.response, connection)}"
    meaning, fix = refusals.api_refusal(status).render(scope=call[0], reset=_reset_s(exchange.response))
    return Check(API_CALL, FAILED, f"{seen}; {meaning}" if meaning else seen, fix)


def _headroom_check(response: ApiResponse) -> Check:
    remaining = _header_int(response.headers, "x-ratelimit-remaining")
    limit = _header_int(response.headers, "x-ratelimit-limit")
    if remaining is None or not limit:
        return Check(RATE_LIMIT_HEADROOM, SKIPPED, "the last response had no x-ratelimit headers")
    reset = _header_int(response.headers, "x-ratelimit-reset")
    detail = f"{remaining} of {limit} requests left in the current window"
    detail += f" (resets in {reset} s)" if reset is not None else ""
    if remaining < limit * HEADROOM_WARNING_SHARE:
        return Check(RATE_LIMIT_HEADROOM, WARNING, detail, refusals.RATE_FIX)
    return Check(RATE_LIMIT_HEADROOM, OK, detail)


def _latency_check(token: _Exchange, api: _Exchange | None, call_label: str | None) -> Check:
    timings = [("token request", token.elapsed_ms)]
    if api is not None and call_label is not None:
        timings.append((call_label, api.elapsed_ms))
    detail = ", ".join(f"{label} {ms:.0f} ms" for label, ms in timings)
    if any(ms > SLOW_MS for _label, ms in timings):
        return Check(LATENCY, WARNING, detail, refusals.SLOW_FIX.format(slow_ms=f"{SLOW_MS:.0f}"))
    return Check(LATENCY, OK, detail)


# ---- the test -----------------------------------------------------------------------------------


async def _checks_after_token(
    connection: Connection,
    transport: Transport,
    token: _Exchange,
    clock: Callable[[], float],
    timeout_s: float,
) -> list[Check]:
    """Credentials, scopes, the read call, headroom and latency, once the token endpoint answered."""
    assert token.response is not None
    credentials, grant = _credentials_check(token.response, connection)
    if grant is None:
        return [credentials, *_skipped(CHECK_NAMES[3:], "no access token")]
    checks = [credentials, _scopes_check(connection, grant.scopes)]
    call = _choose_read(connection, grant.scopes)
    api: _Exchange | None = None
    if call is None:
        reads = ", ".join(scope for scope, _path, _query in READ_CALLS)
        detail = f"no read scope ({reads}) granted, so no read call was made; writes were not tried"
        checks.append(Check(API_CALL, SKIPPED, detail))
    else:
        api = await _read_call(connection, transport, grant, call, clock, timeout_s)
        checks.append(_api_check(call, api, connection))
    last = api.response if api is not None and api.response is not None else token.response
    checks.append(_headroom_check(last))
    checks.append(_latency_check(token, api, _call_label(call) if call else None))
    return checks


def _clean(check: Check, connection: Connection) -> Check:
    """Remove any secret value from a check's text; nothing should contain one, this makes sure."""
    fix = _scrubbed(check.fix, connection) if check.fix else None
    return Check(check.name, check.status, _scrubbed(check.detail, connection), fix)


def _is_usable(checks: list[Check]) -> bool:
    """Credentials accepted and nothing failed; a skipped read call (write-only account) is fine."""
    by_name = {check.name: check for check in checks}
    return by_name[CREDENTIALS_ACCEPTED].status == OK and all(check.status != FAILED for check in checks)


async def check_connection(
    connection: Connection,
    transport: Transport,
    *,
    clock: Callable[[], float] = time.perf_counter,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> ConnectionReport:
    """Test `connection` once, step by step; never raises for anything Hypatos or the network does."""
    checked_at = datetime.now(UTC).isoformat(timespec="seconds")
    token = await _request_token(connection, transport, clock, timeout_s)
    checks = [_reachable_check(token), _tls_check(token)]
    if token.response is None:
        reason = "the token endpoint could not be reached"
        checks += _skipped(CHECK_NAMES[2:], reason if checks[0].status == FAILED else "TLS failed")
    else:
        checks += await _checks_after_token(connection, transport, token, clock, timeout_s)
    cleaned = tuple(_clean(check, connection) for check in checks)
    report = ConnectionReport(connection.name, _is_usable(list(cleaned)), cleaned, checked_at)
    log.info(
        "connection_tested",
        connection=connection.name,
        usable=report.usable,
        checks={check.name: check.status for check in cleaned},
    )
    return report
