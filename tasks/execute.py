"""Runs one request from decoded message to `Processed`: check, claim, replay or call, store.

The steps, in order; each raises a `HypatosWorkerError` with a stable code when it cannot go on:

1. parse the request against the contract (``invalid_request``, with the problems found where the
   message entered: too deep, invalid text, a refused ``reply_to``);
2. find the connection (``unknown_connection``) and check the producer may use it
   (``forbidden_connection``);
3. find the operation (``unknown_operation``) and validate parameters, body, file and options
   (``validation_error``): nothing is claimed or stored for a request that cannot run;
4. claim the request (`worker.leases`): replay a stored result, refuse a different request reusing
   the id (``id_conflict``), wait for a running attempt, or run;
5. call the operation and store the final result.

`process` turns the outcome into exactly one `Processed` (the result and its serialized body), or
raises `Deferral` when a transient failure (or another running attempt of the same request) means it
should be tried again later from the broker.  Nothing here touches the broker.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from dataclasses import dataclass
from typing import Any

import orjson
import pydantic
import structlog

from tasks.catalog import CATALOG, BodyKind, Operation, ResponseKind
from tasks.creation import create_once
from tasks.downloads import download
from tasks.files import FILENAME_HEADER, prepare_upload
from tasks.outcomes import Answer, Deferral, Processed
from tasks.paging import fetch_all_pages
from tasks.requests import build_request
from tasks.service_operations import SERVICE_OPERATIONS, ServiceOperation
from tasks.validation import validate_request
from worker.connections import Connection
from worker.decoding import Decoded, echo
from worker.envelope import Envelope
from worker.errors import ErrorCode, HypatosError, HypatosWorkerError, RequestError, TransientError
from worker.leases import Attempt
from worker.messages import ErrorDetail, Request, Result, ResultError
from worker.result_store import ClaimState, RequestKey
from worker.results import serialize_result
from worker.retry import broker_delay_s
from worker.runtime import Services

log = structlog.get_logger(__name__)


def _problem_summary(details: list[dict[str, str]]) -> str:
    return "; ".join(f"{d['field']}: {d['message']}" for d in details)


def parse_request(decoded: Decoded) -> Request:
    """The request, or `RequestError` naming each field at fault (entry problems first)."""
    details = list(decoded.problems)
    request: Request | None = None
    if not details:
        try:
            request = Request.model_validate(decoded.document)
        except pydantic.ValidationError as exc:
            details = [
                {"field": ".".join(str(p) for p in error["loc"]) or "request", "message": error["msg"]}
                for error in exc.errors()
            ]
    if request is None:
        raise RequestError(
            f"the request does not match the request schema: {_problem_summary(details)}", details=details
        )
    return request


def find_connection(services: Services, name: str) -> Connection:
    """The configured connection called `name` (the list of names is for the operator's log only)."""
    connection = services.connections.get(name)
    if connection is None:
        log.info("unknown_connection", configured=services.connections.names())
        raise RequestError(
            f"unknown connection {name!r}: no connection of that name is configured",
            code=ErrorCode.UNKNOWN_CONNECTION,
        )
    return connection


def authorize(connection: Connection, envelope: Envelope) -> None:
    """Refuse a producer the connection does not allow (when it names its allowed broker users)."""
    allowed = connection.allowed_users
    if allowed is None or envelope.producer in allowed:
        return
    who = f"broker user {envelope.producer!r}" if envelope.producer else "a request without a user_id"
    raise RequestError(
        f"{who} may not use connection {connection.name!r}; its allowed_users names who may "
        "(publish with the AMQP user_id property set to your broker user)",
        code=ErrorCode.FORBIDDEN_CONNECTION,
    )


def find_operation(name: str) -> Operation:
    """The declared operation called `name`."""
    operation = CATALOG.get(name)
    if operation is None:
        raise RequestError(
            f"unknown operation {name!r}; `hypatos-worker operations` lists the catalog",
            code=ErrorCode.UNKNOWN_OPERATION,
        )
    return operation


def fingerprint(request: Request) -> str:
    """What makes two requests with the same id on one connection the same request (hex sha256)."""
    content = request.model_dump(mode="json", exclude={"id", "connection"})
    return hashlib.sha256(orjson.dumps(content, option=orjson.OPT_SORT_KEYS)).hexdigest()


class _Outcome:
    """What is known about the request so far, turned into the `Result` at the end."""

    def __init__(self, message: dict[str, Any], envelope: Envelope, services: Services) -> None:
        self.started = time.perf_counter()
        self.envelope = envelope
        self.services = services
        self.id = str(message.get("id"))
        self.connection = echo(message.get("connection"))
        self.operation = echo(message.get("operation"))
        #: The connection whose secrets the result may hold, once it is known.
        self.scope: str | None = None

    def result(self, *, attempts: int, **fields: Any) -> Result:
        duration_ms = round((time.perf_counter() - self.started) * 1000, 3)
        return Result.model_construct(
            id=self.id,
            connection=self.connection,
            operation=self.operation,
            attempts=self.envelope.attempts_before + attempts,
            duration_ms=duration_ms,
            **fields,
        )

    def failure(self, error: HypatosWorkerError, context: str = "") -> Result:
        """The failed result `error` makes; `context` (why it ends here) prefixes its message."""
        details = error.details
        return self.result(
            status="failed",
            http_status=error.http_status,
            data=error.data,
            error=ResultError(
                code=error.code,
                message=f"{context}: {error.message}" if context else error.message,
                retryable=error.retryable,
                details=[ErrorDetail(**d) for d in details] if details else None,
            ),
            attempts=error.attempts,
        )

    def success(self, answer: Answer) -> Result:
        return self.result(
            status="succeeded",
            http_status=answer.http_status,
            data=answer.data,
            error=None,
            attempts=answer.attempts,
        )

    def processed(self, result: Result) -> Processed:
        """The result with its body (redacted and bounded, `worker.results`)."""
        result, body = serialize_result(
            result, scope=self.scope, max_bytes=self.services.settings.max_result_bytes
        )
        return Processed(result, body)


@dataclass(frozen=True)
class Plan:
    """A request that passed every check, ready to run."""

    request: Request
    connection: Connection
    operation: Operation | None = None
    params: dict[str, Any] | None = None
    service_operation: ServiceOperation | None = None


def plan(services: Services, decoded: Decoded, envelope: Envelope) -> Plan:
    """Steps 1-3 of the module docstring."""
    request = parse_request(decoded)
    connection = find_connection(services, request.connection)
    authorize(connection, envelope)
    service_operation = SERVICE_OPERATIONS.get(request.operation)
    if service_operation is not None:
        return Plan(request, connection, service_operation=service_operation)
    operation = find_operation(request.operation)
    params = validate_request(operation, request, services.settings.max_items)
    return Plan(request, connection, operation, params)


async def call_operation(services: Services, planned: Plan, attempt: Attempt) -> Answer:
    """Make the request's API call (at most once per request for creating operations)."""
    request, connection, operation, params = (
        planned.request,
        planned.connection,
        planned.operation,
        planned.params,
    )
    assert operation is not None and params is not None
    settings = services.settings
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
            response = await create_once(
                services, operation, connection, api_request, request.body, attempt, request.options
            )
        else:
            response = await services.client.call(connection, api_request)
    return Answer.from_response(response)


def defer_or_fail(services: Services, outcome: _Outcome, error: TransientError) -> Result:
    """Raise `Deferral` while the request's retry budget lasts; then a failed, retryable result."""
    settings = services.settings
    attempts = outcome.envelope.attempts_before + error.attempts
    elapsed_s = time.time() - outcome.envelope.first_received_at
    delay_s = broker_delay_s(error, outcome.envelope.deferrals, services.policy, settings.broker_wait_max_s)
    if attempts < settings.request_attempts and elapsed_s + delay_s < settings.request_budget_s:
        raise Deferral(delay_s, attempts, error.code)
    return outcome.failure(error, f"retry budget spent ({attempts} attempts over {elapsed_s:.0f} s)")


def should_store(result: Result) -> bool:
    """Store results of requests that reached Hypatos, unless the failure invites a resubmission."""
    return result.attempts > 0 and not (result.error is not None and result.error.retryable)


async def run_attempt(services: Services, planned: Plan, outcome: _Outcome, attempt: Attempt) -> Result:
    """One attempt at the request as a `Result`, or `Deferral` when it should be tried again later."""
    try:
        if attempt.state is ClaimState.HELD:
            raise TransientError(
                "another attempt of this request is running; waiting for its result",
                code=ErrorCode.IN_PROGRESS,
                retry_after_s=services.settings.claim_lease_s / 2,
            )
        service_operation = planned.service_operation
        if service_operation is not None:
            answer = await service_operation.run(services, planned.connection, planned.request, attempt)
        else:
            answer = await call_operation(services, planned, attempt)
        return outcome.success(answer)
    except TransientError as error:
        return defer_or_fail(services, outcome, error)
    except HypatosWorkerError as error:
        level = log.warning if isinstance(error, HypatosError) else log.info
        level("request_failed", error_code=error.code, http_status=error.http_status)
        return outcome.failure(error)


def _id_conflict(outcome: _Outcome) -> Result:
    return outcome.failure(
        RequestError(
            "this id was used on this connection by a different request (another operation, parameters, "
            "body or file); ids are idempotency keys: use a new id for a new request",
            code=ErrorCode.ID_CONFLICT,
        )
    )


async def process(decoded: Decoded, envelope: Envelope, services: Services) -> Processed:
    """Run the request once per (connection, id); see the module docstring."""
    outcome = _Outcome(decoded.document, envelope, services)
    try:
        planned = plan(services, decoded, envelope)
    except RequestError as error:
        log.info("request_failed", error_code=error.code)
        return outcome.processed(outcome.failure(error))
    outcome.scope = planned.connection.name
    if planned.service_operation is not None and not planned.service_operation.claims:
        # diagnostics always run afresh: nothing is claimed or stored
        unclaimed = Attempt(ClaimState.NEW, time.time())
        return outcome.processed(await run_attempt(services, planned, outcome, unclaimed))
    key = RequestKey(planned.connection.name, planned.request.id, fingerprint(planned.request))
    async with services.leases.attempt(key) as attempt:
        if attempt.state is ClaimState.STORED and attempt.stored is not None:
            log.info("request_replayed")
            stored = Result.model_validate_json(attempt.stored)
            return Processed(stored, attempt.stored, replayed=True)
        if attempt.state is ClaimState.CONFLICT:
            log.warning("request_id_conflict")
            return outcome.processed(_id_conflict(outcome))
        processed = outcome.processed(await run_attempt(services, planned, outcome, attempt))
        if should_store(processed.result):
            await services.results.put(key, processed.body)
    return processed
