"""Runs one request from message to `Result`: parse, look up, validate, call Hypatos, decode.

Each step raises a `HypatosWorkerError` with a stable code when it cannot go on; `execute` turns the
outcome, success or failure, into exactly one `Result`.  Nothing here touches the broker.
"""

from __future__ import annotations

import time
from typing import Any

import pydantic
import structlog

from tasks.catalog import CATALOG, BodyKind, Operation, ResponseKind
from tasks.requests import build_request
from tasks.validation import validate
from worker.connections import Connection
from worker.errors import HypatosError, HypatosWorkerError, RequestError
from worker.messages import ErrorDetail, Request, Result, ResultError
from worker.runtime import Services
from worker.transport import ApiResponse

log = structlog.get_logger(__name__)


def parse_request(message: dict[str, Any]) -> Request:
    """The request in `message`, or `RequestError` naming each field at fault."""
    try:
        return Request.model_validate(message)
    except pydantic.ValidationError as exc:
        details = [
            {"field": ".".join(str(p) for p in error["loc"]) or "request", "message": error["msg"]}
            for error in exc.errors()
        ]
        summary = "; ".join(f"{d['field']}: {d['message']}" for d in details)
        error = RequestError(f"the request does not match the request schema: {summary}")
        error.details = details  # type: ignore[attr-defined]
        raise error from None


def find_operation(name: str) -> Operation:
    """The declared operation called `name`."""
    operation = CATALOG.get(name)
    if operation is None:
        raise RequestError(
            f"unknown operation {name!r}; `hypatos-worker operations` lists the catalog",
            code="unknown_operation",
        )
    if operation.body is BodyKind.BINARY or operation.response is ResponseKind.BINARY:
        raise RequestError(f"{name} moves file content, which this version does not support yet",
                           code="not_supported")  # fmt: skip
    return operation


def find_connection(services: Services, name: str) -> Connection:
    """The configured connection called `name`."""
    connection = services.connections.get(name)
    if connection is None:
        raise RequestError(
            f"unknown connection {name!r}; configured: {', '.join(services.connections.names())}",
            code="unknown_connection",
        )
    return connection


def decode_data(operation: Operation, response: ApiResponse) -> Any:
    """The result's ``data`` for a successful response."""
    if operation.response is ResponseKind.EMPTY:
        return response.decoded()  # normally None; kept if Hypatos ever says something
    return response.decoded()


class _Outcome:
    """Mutable bits gathered while running, turned into the `Result` at the end."""

    def __init__(self, message: dict[str, Any]) -> None:
        self.started = time.perf_counter()
        self.id = str(message.get("id"))
        self.connection = message.get("connection") if isinstance(message.get("connection"), str) else None
        self.operation = message.get("operation") if isinstance(message.get("operation"), str) else None

    def result(self, **fields: Any) -> Result:
        duration_ms = round((time.perf_counter() - self.started) * 1000, 3)
        return Result(
            id=self.id,
            connection=self.connection,
            operation=self.operation,
            duration_ms=duration_ms,
            **fields,
        )


def failure(outcome: _Outcome, error: HypatosWorkerError) -> Result:
    """A failed result for `error`."""
    details = getattr(error, "details", None)
    return outcome.result(
        status="failed",
        http_status=getattr(error, "http_status", None),
        data=getattr(error, "data", None),
        error=ResultError(
            code=error.code,
            message=error.message,
            retryable=error.retryable,
            details=[ErrorDetail(**d) for d in details] if details else None,
        ),
        attempts=getattr(error, "attempts", 0),
    )


async def execute(message: dict[str, Any], services: Services) -> Result:
    """Run the request in `message` and describe how it went."""
    outcome = _Outcome(message)
    try:
        request = parse_request(message)
        operation = find_operation(request.operation)
        connection = find_connection(services, request.connection)
        params = validate(operation, request.params, request.body)
        response = await services.client.call(connection, build_request(operation, params, request.body))
    except HypatosWorkerError as error:
        if isinstance(error, HypatosError):
            log.warning("request_failed", error_code=error.code, http_status=error.http_status)
        else:
            log.info("request_refused", error_code=error.code)
        return failure(outcome, error)
    return outcome.result(
        status="succeeded",
        http_status=response.status,
        data=decode_data(operation, response),
        error=None,
        attempts=response.attempts,
    )
