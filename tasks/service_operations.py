"""Operations the service offers on the queue that are not single Hypatos API calls.

``processDocument`` runs a document's whole journey (upload, process, wait, fetch) as one request;
see `tasks.pipeline`.

``testConnection`` runs the same step-by-step check as ``hypatos-worker test-connection`` and
returns the report as ``data``: ``status`` is ``succeeded`` when the connection is usable, else
``failed`` with ``error.code`` ``connection_unusable``.

Each check costs a token request, which counts against the account's quota, so a worker process
answers a ``testConnection`` for the same connection (same settings) within
``HYPATOS_TEST_CONNECTION_INTERVAL_S`` of the last check with that check's report again, marked
``"cached": true``, without any HTTP call (`RecentReports`).  Requests arriving while a check runs
wait for it.  Other worker processes keep their own reports.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog

from tasks.outcomes import Answer
from tasks.pipeline import run_process_document
from worker.connections import Connection
from worker.diagnose import (
    API_CALL,
    CREDENTIALS_ACCEPTED,
    FAILED,
    SKIPPED,
    ConnectionReport,
    check_connection,
)
from worker.errors import ErrorCode, HypatosError, ValidationError
from worker.leases import Attempt
from worker.messages import Request
from worker.runtime import Services

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class _Checked:
    """A report and what it was made with: the connection as configured then, and when (monotonic)."""

    connection: Connection
    report: ConnectionReport
    at: float


class RecentReports:
    """The last Test Connection report per connection name in this process, reused for a while."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._last: dict[str, _Checked] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def _reusable(self, connection: Connection, interval_s: float) -> ConnectionReport | None:
        last = self._last.get(connection.name)
        if last is None or last.connection != connection or self._clock() - last.at >= interval_s:
            return None
        return last.report

    async def report(
        self,
        connection: Connection,
        interval_s: float,
        check: Callable[[Connection], Awaitable[ConnectionReport]],
    ) -> tuple[ConnectionReport, bool]:
        """The report of a check of `connection` at most `interval_s` old, and whether it was reused.

        One check at a time per connection: a request arriving meanwhile waits and reuses its report.
        A changed connection (secret, scope, URL) is checked afresh.  `interval_s` 0 always checks.
        """
        if interval_s <= 0:
            return await check(connection), False
        async with self._locks.setdefault(connection.name, asyncio.Lock()):
            reusable = self._reusable(connection, interval_s)
            if reusable is not None:
                return reusable, True
            report = await check(connection)
            self._last[connection.name] = _Checked(connection, report, self._clock())
            return report, False


#: This worker process's reports (one runtime, one event loop per process).
RECENT_REPORTS = RecentReports()


def _exchanges(report: ConnectionReport) -> int:
    """HTTP calls the check made: the token request and the read call, when they were answered."""
    return sum(
        check.status != SKIPPED for check in report.checks if check.name in (CREDENTIALS_ACCEPTED, API_CALL)
    )


async def answer_test_connection(services: Services, connection: Connection, recent: RecentReports) -> Answer:
    """The connection's report, checked afresh or reused from `recent`; raises `HypatosError` (with
    the report as data) when the connection is not usable."""
    interval_s = services.settings.test_connection_interval_s
    report, cached = await recent.report(
        connection, interval_s, lambda c: check_connection(c, services.transport)
    )
    data = {**report.to_dict(), "cached": cached}
    attempts = 0 if cached else _exchanges(report)
    if cached:
        log.info("connection_test_reused", connection=connection.name, checked_at=report.checked_at)
    if not report.usable:
        failed = [c for c in report.checks if c.status == FAILED]
        summary = "; ".join(f"{c.name}: {c.detail}" + (f" (fix: {c.fix})" if c.fix else "") for c in failed)
        error = HypatosError(
            f"connection {connection.name!r} is not usable: {summary}",
            code=ErrorCode.CONNECTION_UNUSABLE,
            retryable=False,
            data=data,
        )
        error.attempts = attempts
        raise error
    return Answer(http_status=None, data=data, attempts=attempts)


async def run_test_connection(
    services: Services, connection: Connection, request: Request, attempt: Attempt
) -> Answer:
    """``testConnection``: takes no parameters; see `answer_test_connection`."""
    params = request.params
    if params:
        raise ValidationError(
            "testConnection takes no parameters",
            details=[{"field": f"params.{name}", "message": "unknown parameter"} for name in params],
        )
    return await answer_test_connection(services, connection, RECENT_REPORTS)


@dataclass(frozen=True)
class ServiceOperation:
    """An operation of the service itself: what it does, and the coroutine that does it."""

    summary: str
    run: Callable[[Services, Connection, Request, Attempt], Awaitable[Answer]]
    #: Whether the request is claimed and its final result stored, as for API operations (once per
    #: id); diagnostics are not, and always run afresh.
    claims: bool = False


#: Service operations by name.
SERVICE_OPERATIONS: dict[str, ServiceOperation] = {
    "testConnection": ServiceOperation(
        "Check the request's connection step by step (no parameters); data is the report",
        run_test_connection,
    ),
    "processDocument": ServiceOperation(
        "Upload a file, process it into a document in params.projectId, wait for options.wait_for "
        "(batched polls, no worker held) and fetch it; data holds the document, ids, calls, step times",
        run_process_document,
        claims=True,
    ),
}
