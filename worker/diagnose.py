"""Test Connection: try a connection step by step and say, for each step, what to fix.

`test_connection` makes one token request and, when it gets a token, one cheap read call.  Each
step becomes a `Check`; the `ConnectionReport` drives ``hypatos-worker test-connection`` (text via
`format_report`, ``--json`` via `ConnectionReport.to_dict`) and the ``testConnection`` queue
operation.  Nothing is retried, so the report shows what happened on this attempt, not what a
retrying client would eventually get.  The token obtained is used only here and never cached.

Every text that leaves this module is built from fixed wording, status codes, scope names and URLs
without credentials; transport errors contribute only their code and message, and all text is
scrubbed of the client secret and the token as a last line of defence.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import structlog

from worker import constants
from worker.classify import retry_after_s
from worker.connections import Connection
from worker.errors import HypatosError
from worker.logging import REDACTED, secrets
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

_NETWORK_FIX = (
    "check endpoint_url and access_token_url, DNS, the network route from this host, "
    "and any proxy or firewall between this host and Hypatos"
)
_TLS_FIX = (
    "check that the URL names the Hypatos server (not a proxy or an IP address) and that this host's "
    "CA store trusts its certificate (corporate TLS inspection needs its CA installed)"
)
_CREDENTIALS_FIX = (
    "check client_id and client_secret, and that the API service account is active in Hypatos Studio"
)
_SERVER_FIX = "Hypatos had a server error: test again later and check the Hypatos status page"
_RATE_FIX = "slow down: lower the worker concurrency or spread the calls, or ask Hypatos for a higher quota"


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

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types only, for ``--json`` and the queue operation's result."""
        return {
            "connection": self.connection,
            "usable": self.usable,
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


async def _send(
    transport: Transport,
    clock: Callable[[], float],
    timeout_s: float,
    method: str,
    url: str,
    **options: Any,
) -> _Exchange:
    """One timed exchange; transport errors and timeouts are returned, not raised, to be reported."""
    started = clock()
    try:
        async with asyncio.timeout(timeout_s):
            response = await transport.send(method, url, **options)
    except HypatosError as exc:
        return _Exchange(url, _ms(clock() - started), error=exc)
    except TimeoutError:
        error = HypatosError(f"no answer within {timeout_s:g} s", code="timeout")
        return _Exchange(url, _ms(clock() - started), error=error)
    return _Exchange(url, _ms(clock() - started), response=response)


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


async def _request_token(
    connection: Connection, transport: Transport, clock: Callable[[], float], timeout_s: float
) -> _Exchange:
    """The same request `worker.tokens` makes, sent once, so the test exercises the real path."""
    form = {"grant_type": constants.GRANT_TYPE}
    if connection.scope:
        form["scope"] = connection.scope
    headers = {
        "Accept": "application/json",
        "Authorization": aiohttp.encode_basic_auth(
            connection.client_id, connection.client_secret.get_secret_value()
        ),
    }
    return await _send(
        transport, clock, timeout_s, "POST", connection.access_token_url, headers=headers, data=form
    )


async def _read_call(
    connection: Connection,
    transport: Transport,
    grant: _Grant,
    call: tuple[str, str, tuple[tuple[str, str], ...]],
    clock: Callable[[], float],
    timeout_s: float,
) -> _Exchange:
    _scope, path, query = call
    headers = {"Accept": "application/json", "Authorization": f"Bearer {grant.token}"}
    return await _send(
        transport, clock, timeout_s, "GET", connection.endpoint_url + path, headers=headers, params=query
    )


# ---- reading the answers ------------------------------------------------------------------------


def _display_url(url: str) -> str:
    """The URL without user info or query, fit for a report."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def _error_summary(error: HypatosError) -> str:
    return f"{error.message} [{error.code}]"


def _problem_title(response: ApiResponse) -> str:
    """The ``title`` of an error body, if any, cut short: it says which refusal it was."""
    body = response.decoded()
    title = body.get("title") if isinstance(body, dict) else None
    return f": {str(title)[:120]}" if title else ""


def _reset_s(response: ApiResponse) -> str:
    wait = retry_after_s(429, response.headers)
    return f"{wait:g} s" if wait is not None else "an unknown time"


def _granted(response: ApiResponse) -> _Grant | None:
    """The token and its scopes from a 200 answer, or None when the body holds no token."""
    body = response.decoded()
    token = body.get("access_token") if isinstance(body, dict) else None
    if not isinstance(token, str) or not token:
        return None
    secrets.add(token)
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
    if exchange.error.code == "tls_error":
        return Check(ENDPOINT_REACHABLE, OK, f"connected to {url}, but the TLS handshake failed")
    return Check(
        ENDPOINT_REACHABLE,
        FAILED,
        f"could not reach the token endpoint {url}: {_error_summary(exchange.error)}",
        _NETWORK_FIX,
    )


def _tls_check(exchange: _Exchange) -> Check:
    if urlsplit(exchange.url).scheme != "https":
        return Check(TLS, SKIPPED, "plain http (custom endpoint)")
    if exchange.error is not None and exchange.error.code == "tls_error":
        return Check(TLS, FAILED, f"TLS handshake failed: {_error_summary(exchange.error)}", _TLS_FIX)
    if exchange.response is None:
        return Check(TLS, SKIPPED, "not run: the token endpoint could not be reached")
    return Check(TLS, OK, "TLS handshake with the token endpoint succeeded")


def _credentials_check(response: ApiResponse) -> tuple[Check, _Grant | None]:
    """Judge the token endpoint's answer; only a 2xx with an access token yields a grant."""
    status = response.status
    if 200 <= status < 300:
        grant = _granted(response)
        if grant is not None:
            return Check(CREDENTIALS_ACCEPTED, OK, f"token issued (HTTP {status})"), grant
        fix = "check that access_token_url is the Hypatos token endpoint (endpoint_url + /auth/token)"
        return Check(CREDENTIALS_ACCEPTED, FAILED, f"HTTP {status} without an access_token", fix), None
    return Check(CREDENTIALS_ACCEPTED, FAILED, *_token_refusal(response)), None


def _token_refusal(response: ApiResponse) -> tuple[str, str]:
    """Detail and fix for a token endpoint answer other than 2xx."""
    status = response.status
    seen = f"the token endpoint answered HTTP {status}{_problem_title(response)}"
    if status == 401:
        return f"{seen}; the client credentials were refused", _CREDENTIALS_FIX
    if status == 400:
        fix = f"{_CREDENTIALS_FIX}, and that `scope` names at least one scope granted to it"
        return f"{seen}; the token request was refused", fix
    if status == 403:
        return (
            f"{seen}; the requested scope was refused",
            "remove scopes not granted to the account from `scope`",
        )
    if status == 404:
        return (
            f"{seen}; no token endpoint there",
            "check access_token_url (default: endpoint_url + /auth/token)",
        )
    if status == 429:
        return f"{seen}; the rate limit is spent, the window resets in {_reset_s(response)}", (
            f"test again after the reset; if it recurs, {_RATE_FIX}"
        )
    if status >= 500:
        return f"{seen}; credentials could not be checked", _SERVER_FIX
    return f"{seen}; unexpected answer", "check access_token_url: it should be the Hypatos token endpoint"


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
    fix = f"ask Hypatos to grant {names} to the API service account, or remove {them} from `scope`"
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


def _api_check(call: tuple[str, str, tuple[tuple[str, str], ...]], exchange: _Exchange) -> Check:
    label = _call_label(call)
    if exchange.error is not None:
        fix = _TLS_FIX if exchange.error.code == "tls_error" else _NETWORK_FIX
        return Check(API_CALL, FAILED, f"{label} failed: {_error_summary(exchange.error)}", fix)
    assert exchange.response is not None
    status = exchange.response.status
    if 200 <= status < 300:
        return Check(API_CALL, OK, f"{label} answered HTTP {status} ({call[0]})")
    seen = f"{label} answered HTTP {status}{_problem_title(exchange.response)}"
    return Check(API_CALL, FAILED, *_api_refusal(call, exchange.response, seen))


def _api_refusal(
    call: tuple[str, str, tuple[tuple[str, str], ...]], response: ApiResponse, seen: str
) -> tuple[str, str]:
    """Detail and fix for a read call answered with something other than 2xx."""
    status = response.status
    if status == 401:
        return f"{seen}; the API refused the fresh token", (
            "check that access_token_url and endpoint_url belong to the same Hypatos environment"
        )
    if status == 403:
        return f"{seen}; the token lacks {call[0]}", (
            f"ask Hypatos to grant {call[0]} to the API service account, or check `scope`"
        )
    if status == 404:
        return f"{seen}; no such API there", "check endpoint_url: it should end in /v2"
    if status == 429:
        return f"{seen}; the rate limit is spent, the window resets in {_reset_s(response)}", (
            f"test again after the reset; if it recurs, {_RATE_FIX}"
        )
    if status >= 500:
        return seen, _SERVER_FIX
    return f"{seen}; unexpected answer", "check endpoint_url: it should be a Hypatos v2 API URL"


def _headroom_check(response: ApiResponse) -> Check:
    remaining = _header_int(response.headers, "x-ratelimit-remaining")
    limit = _header_int(response.headers, "x-ratelimit-limit")
    if remaining is None or not limit:
        return Check(RATE_LIMIT_HEADROOM, SKIPPED, "the last response had no x-ratelimit headers")
    reset = _header_int(response.headers, "x-ratelimit-reset")
    detail = f"{remaining} of {limit} requests left in the current window"
    detail += f" (resets in {reset} s)" if reset is not None else ""
    if remaining < limit * HEADROOM_WARNING_SHARE:
        return Check(RATE_LIMIT_HEADROOM, WARNING, detail, _RATE_FIX)
    return Check(RATE_LIMIT_HEADROOM, OK, detail)


def _latency_check(token: _Exchange, api: _Exchange | None, call_label: str | None) -> Check:
    timings = [("token request", token.elapsed_ms)]
    if api is not None and call_label is not None:
        timings.append((call_label, api.elapsed_ms))
    detail = ", ".join(f"{label} {ms:.0f} ms" for label, ms in timings)
    if any(ms > SLOW_MS for _label, ms in timings):
        fix = (
            f"Hypatos answers slowly from here (over {SLOW_MS:.0f} ms): check the network path and any "
            "proxy; expect longer operation times"
        )
        return Check(LATENCY, WARNING, detail, fix)
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
    credentials, grant = _credentials_check(token.response)
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
        checks.append(_api_check(call, api))
    last = api.response if api is not None and api.response is not None else token.response
    checks.append(_headroom_check(last))
    checks.append(_latency_check(token, api, _call_label(call) if call else None))
    return checks


def _clean(check: Check, hidden: tuple[str, ...]) -> Check:
    """Remove any secret value from a check's text; nothing should contain one, this makes sure."""

    def scrub(text: str) -> str:
        for value in hidden:
            text = text.replace(value, REDACTED)
        return secrets.scrub(text)

    return Check(check.name, check.status, scrub(check.detail), scrub(check.fix) if check.fix else None)


def _is_usable(checks: list[Check]) -> bool:
    """Credentials accepted and nothing failed; a skipped read call (write-only account) is fine."""
    by_name = {check.name: check for check in checks}
    return by_name[CREDENTIALS_ACCEPTED].status == OK and all(check.status != FAILED for check in checks)


async def test_connection(
    connection: Connection,
    transport: Transport,
    *,
    clock: Callable[[], float] = time.perf_counter,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> ConnectionReport:
    """Test `connection` once, step by step; never raises for anything Hypatos or the network does."""
    token = await _request_token(connection, transport, clock, timeout_s)
    checks = [_reachable_check(token), _tls_check(token)]
    if token.response is None:
        reason = "the token endpoint could not be reached"
        checks += _skipped(CHECK_NAMES[2:], reason if checks[0].status == FAILED else "TLS failed")
    else:
        checks += await _checks_after_token(connection, transport, token, clock, timeout_s)
    hidden = tuple(v for v in (connection.client_secret.get_secret_value(),) if v)
    cleaned = tuple(_clean(check, hidden) for check in checks)
    report = ConnectionReport(connection.name, _is_usable(list(cleaned)), cleaned)
    log.info(
        "connection_tested",
        connection=connection.name,
        usable=report.usable,
        checks={check.name: check.status for check in cleaned},
    )
    return report


#: Tell pytest that this function, imported into a test module, is not itself a test.
test_connection.__test__ = False  # type: ignore[attr-defined]

# ---- output -------------------------------------------------------------------------------------

_MARKS = {OK: "[ok]  ", WARNING: "[warn]", FAILED: "[FAIL]", SKIPPED: "[skip]"}


def format_report(report: ConnectionReport) -> str:
    """Text for people: a verdict, one line per check with a mark, and each fix indented below it."""
    verdict = "usable" if report.usable else "NOT usable"
    lines = [f"connection {report.connection!r}: {verdict}"]
    width = max(len(name) for name in CHECK_NAMES)
    for check in report.checks:
        lines.append(f"  {_MARKS.get(check.status, check.status)} {check.name:<{width}}  {check.detail}")
        if check.fix:
            lines.append(f"         {'':<{width}}  fix: {check.fix}")
    return "\n".join(lines)
