"""Runs one request from message to `Result`: parse, claim the id, replay or look up, validate, call, store.

Each step raises a `HypatosWorkerError` with a stable code when it cannot go on; `process` turns the
outcome into exactly one `Result`, or raises `Deferral` when a transient failure (or another running
attempt of the same id) means it should be tried again later from the broker.  Nothing here touches
the broker.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

import pydantic
import structlog

from tasks.catalog import CATALOG, BodyKind, Operation, ResponseKind
from tasks.creation import create_once
from tasks.downloads import download
from tasks.files import FILENAME_HEADER, prepare_upload
from tasks.outcomes import Answer, Deferral, Delivery, Processed
from tasks.paging import fetch_all_pages
from tasks.requests import build_request
from tasks.service_operations import SERVICE_OPERATIONS
from tasks.validation import validate_request
from worker.connections import Connection
from worker.errors import HypatosError, HypatosWorkerError, RequestError, TransientError
from worker.leases import Attempt, attempt_lease
from worker.messages import ErrorDetail, Request, Result, ResultError
from worker.result_store import ClaimState
from worker.retry import broker_delay_s
from worker.runtime import Services

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
        raise RequestError(
            f"the request does not match the request schema: {summary}", details=details
        ) from None


def find_operation(name: str) -> Operation:
    """The declared operation called `name`."""
    operation = CATALOG.get(name)
    if operation is None:
        raise RequestError(
            f"unknown operation {name!r}; `hypatos-worker operations` lists the catalog",
            code="unknown_operation",
        )
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


class _Outcome:
    """What is known about the request so far, turned into the `Result` at the end."""

    def __init__(self, message: dict[str, Any], delivery: Delivery) -> None:
        self.started = time.perf_counter()
        self.delivery = delivery
        self.id = str(message.get("id"))
        self.connection = message.get("connection") if isinstance(message.get("connection"), str) else None
        self.operation = message.get("operation") if isinstance(message.get("operation"), str) else None

    def result(self, *, attempts: int, **fields: Any) -> Result:
        duration_ms = round((time.perf_counter() - self.started) * 1000, 3)
        return Result(
            id=self.id,
            connection=self.connection,
            operation=self.operation,
            attempts=self.delivery.attempts_before + attempts,
            duration_ms=duration_ms,
            **fields,
        )

    def failure(self, error: HypatosWorkerError) -> Result:
        details = error.details
        return self.result(
            status="failed",
            http_status=error.http_status,
            data=error.data,
            error=ResultError(
                code=error.code,
                message=error.message,
                retryable=error.retryable,
                details=[ErrorDetail(**d) for d in details] if details else None,
            ),
            attempts=error.attempts,
        )

    def success(self, answer: Answer) -> Result:
        return self.result(
            status="succeeded", http_status=answer.http_status, data=answer.data, error=None,
            attempts=answer.attempts,
        )  # fmt: skip


async def call_operation(services: Services, request: Request, attempt: Attempt) -> Answer:
    """Validate `request` and make its API call (at most once per id for creating operations)."""
    service_operation = SERVICE_OPERATIONS.get(request.operation)
    if service_operation is not None:
        connection = find_connection(services, request.connection)
        return await service_operation.run(services, connection, request.params)
    operation = find_operation(request.operation)
    connection = find_connection(services, request.connection)
    settings = services.settings
    params = validate_request(operation, request, settings.max_items)
    if request.all_pages:
        max_items = request.max_items or settings.max_items
        return await fetch_all_pages(services, connection, operation, params, max_items)
    if operation.response is ResponseKind.BINARY:
        return await download(services, connection, operation, params, request)
    upload = None
    if operation.body is BodyKind.BINARY:
        upload = prepare_upload(request.file, params.get(FILENAME_HEADER), settings)
    with upload or contextlib.nullcontext():  # closes the inbox file when the call is over
        api_request = build_request(operation, params, request.body, upload=upload)
        if operation.creates:
            response = await create_once(services, operation, connection, api_request, request.body, attempt)
        else:
            response = await services.client.call(connection, api_request)
    return Answer.from_response(response)


def defer_or_fail(services: Services, outcome: _Outcome, error: TransientError) -> Result:
    """Raise `Deferral` while the request's retry budget lasts; then a failed, retryable result."""
    settings = services.settings
    attempts = outcome.delivery.attempts_before + error.attempts
    elapsed_s = time.time() - outcome.delivery.first_received_at
    delay_s = broker_delay_s(error, outcome.delivery.deferrals, services.policy, settings.retry_max_delay_s)
    if attempts < settings.retry_max_attempts and elapsed_s + delay_s < settings.retry_max_elapsed_s:
        raise Deferral(delay_s, attempts, error.code)
    error.message = f"retry budget spent ({attempts} attempts over {elapsed_s:.0f} s): {error.message}"
    return outcome.failure(error)


def should_store(result: Result) -> bool:
    """Store results of requests that reached Hypatos, unless the failure invites a resubmission."""
    if result.operation in SERVICE_OPERATIONS:
        return False  # diagnostics always run afresh
    return result.attempts > 0 and not (result.error is not None and result.error.retryable)


async def run_attempt(services: Services, request: Request, outcome: _Outcome, attempt: Attempt) -> Result:
    """One attempt at `request` as a `Result`, or `Deferral` when it should be tried again later."""
    try:
        if attempt.state is ClaimState.HELD:
            raise TransientError(
                "another attempt of this request is running; waiting for its result",
                code="in_progress",
                retry_after_s=services.settings.claim_lease_s / 2,
            )
        return outcome.success(await call_operation(services, request, attempt))
    except TransientError as error:
        return defer_or_fail(services, outcome, error)
    except HypatosWorkerError as error:
        level = log.warning if isinstance(error, HypatosError) else log.info
        level("request_failed", error_code=error.code, http_status=error.http_status)
        return outcome.failure(error)


async def process(message: dict[str, Any], services: Services, delivery: Delivery) -> Processed:
    """Run the request in `message` once per id; see the module docstring."""
    outcome = _Outcome(message, delivery)
    try:
        request = parse_request(message)
    except RequestError as error:
        log.info("request_failed", error_code=error.code)
        return Processed(outcome.failure(error))
    store = services.results
    async with attempt_lease(store, request.id, services.settings.claim_lease_s) as attempt:
        # Looked up after claiming: an attempt that stored its result has released its lease.
        stored = await store.get(request.id) if attempt.state is not ClaimState.HELD else None
        if stored is not None:
            log.info("request_replayed", status=stored.status)
            return Processed(stored, replayed=True)
        result = await run_attempt(services, request, outcome, attempt)
        if should_store(result):
            await store.put(result)
    return Processed(result)
