"""Operations the service offers on the queue that are not single Hypatos API calls.

``testConnection`` runs the same step-by-step check as ``hypatos-worker test-connection`` and
returns the report as ``data``: ``status`` is ``succeeded`` when the connection is usable, else
``failed`` with ``error.code`` ``connection_unusable``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from tasks.outcomes import Answer
from worker.connections import Connection
from worker.diagnose import check_connection
from worker.errors import HypatosError, ValidationError
from worker.runtime import Services


async def run_test_connection(services: Services, connection: Connection, params: dict[str, Any]) -> Answer:
    """The connection's report; raises `HypatosError` (with the report as data) when it is not usable."""
    if params:
        raise ValidationError(
            "testConnection takes no parameters",
            details=[{"field": f"params.{name}", "message": "unknown parameter"} for name in params],
        )
    report = await check_connection(connection, services.transport)
    data = report.to_dict()
    exchanges = sum(
        c.status != "skipped" for c in report.checks if c.name in ("credentials_accepted", "api_call")
    )
    if not report.usable:
        failed = [c for c in report.checks if c.status == "failed"]
        summary = "; ".join(f"{c.name}: {c.detail}" + (f" (fix: {c.fix})" if c.fix else "") for c in failed)
        raise HypatosError(
            f"connection {connection.name!r} is not usable: {summary}",
            code="connection_unusable",
            retryable=False,
            data=data,
        )
    return Answer(http_status=None, data=data, attempts=exchanges)


@dataclass(frozen=True)
class ServiceOperation:
    """An operation of the service itself: what it does, and the coroutine that does it."""

    summary: str
    run: Callable[[Services, Connection, dict[str, Any]], Awaitable[Answer]]


#: Service operations by name.
SERVICE_OPERATIONS: dict[str, ServiceOperation] = {
    "testConnection": ServiceOperation(
        "Check the request's connection step by step (no parameters); data is the report",
        run_test_connection,
    ),
}
