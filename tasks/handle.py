"""The request handler: one delivered message in, exactly one thing out, then settle.

For each message the consumer (`worker.consumer`) hands over, `handle_request` produces exactly one
of these, confirmed by the broker, and only then says to acknowledge the message:

- a *result* (to ``reply_to`` or the result queue), from `tasks.execute.process`;
- a *dead letter*, when the message has nothing a result could be addressed to
  (`worker.decoding.Undeliverable`: too large, not UTF-8 JSON, not an object, no usable ``id``);
- a *deferred copy* of the request, sent through the broker's delay chain, when a transient failure
  is to be retried later (the request then comes back and ends, in turn, as one of these three).

If the broker cannot take that one thing, or anything fails unexpectedly, the message is requeued;
after ``HYPATOS_DELIVERY_LIMIT`` deliveries RabbitMQ moves it to the dead-letter queue.  So every
message ends as one result (a replay aside) or one dead letter, and nothing one message does can
cost another its result.
"""

from __future__ import annotations

import functools
import time
import uuid
from dataclasses import replace
from typing import Any

import aiormq
import structlog

from tasks.catalog import CATALOG
from tasks.execute import process
from tasks.outcomes import Deferral, Processed
from tasks.service_operations import SERVICE_OPERATIONS
from worker import metrics
from worker.consumer import Delivery, Settle
from worker.decoding import Decoded, Undeliverable, decode_request, echo
from worker.envelope import Envelope
from worker.publisher import Publisher, Unroutable
from worker.queues import internal_queue_names
from worker.runtime import Services
from worker.settings import WorkerSettings
from worker.task_events import TASK_NAME

log = structlog.get_logger(__name__)

#: What the broker raises when it cannot take a publish (returned, refused, or gone).
BROKER_ERRORS = (Unroutable, aiormq.exceptions.AMQPError, aiormq.exceptions.ChannelInvalidStateError, OSError)


def refuse_reply_to(envelope: Envelope, settings: WorkerSettings) -> tuple[Envelope, list[dict[str, str]]]:
    """A ``reply_to`` naming one of the service's own queues is refused: the answer goes to the result
    queue instead, as an ``invalid_request`` failure saying why."""
    if envelope.reply_to is None:  # the common case costs nothing
        return envelope, []
    if envelope.reply_to not in internal_queue_names(settings):
        return envelope, []
    problem = {"field": "reply_to", "message": f"may not name the service's own queue {envelope.reply_to!r}"}
    return replace(envelope, reply_to=None), [problem]


async def handle_request(delivery: Delivery, publisher: Publisher, services: Services) -> Settle:
    """Handle one delivered request; see the module docstring."""
    settings = services.settings
    try:
        decoded = decode_request(
            delivery.body, max_bytes=settings.max_request_bytes, max_depth=settings.max_request_depth
        )
    except Undeliverable as exc:
        return await _dead_letter(delivery, publisher, str(exc))
    envelope, problems = refuse_reply_to(delivery.envelope, settings)
    if problems:
        decoded = replace(decoded, problems=[*decoded.problems, *problems])
    with structlog.contextvars.bound_contextvars(
        request_id=decoded.id,
        connection=echo(decoded.document.get("connection")),
        operation=echo(decoded.document.get("operation")),
        traceparent=envelope.traceparent,
    ):
        if publisher.events is None or not publisher.events.on:
            return await _answer(delivery, decoded, envelope, publisher, services)
        return await _answer_reported(delivery, decoded, envelope, publisher, services)


async def _answer_reported(
    delivery: Delivery, decoded: Decoded, envelope: Envelope, publisher: Publisher, services: Services
) -> Settle:
    """`_answer`, reported to monitors as a Celery task (`worker.task_events`)."""
    events = publisher.events
    assert events is not None
    task_id, started = uuid.uuid4().hex, time.monotonic()
    summary = {
        "id": decoded.id,
        "connection": echo(decoded.document.get("connection")),
        "operation": echo(decoded.document.get("operation")),
    }
    await events.send(
        "task-received",
        uuid=task_id,
        name=TASK_NAME,
        args="()",
        kwargs=repr(summary),
        retries=envelope.deferrals,
        root_id=task_id,
        parent_id=None,
    )
    await events.send("task-started", uuid=task_id)
    outcome: dict[str, Any] = {}
    settle = await _answer(delivery, decoded, envelope, publisher, services, outcome)
    runtime = time.monotonic() - started
    if outcome.get("status") == "failed":
        await events.send("task-failed", uuid=task_id, exception=outcome.get("error", ""), traceback="")
    elif outcome:
        await events.send("task-succeeded", uuid=task_id, result=repr(outcome), runtime=runtime)
    else:  # sent back to wait on the broker, or to the queue
        await events.send("task-retried", uuid=task_id, exception=settle.value, traceback="")
    return settle


async def _answer(
    delivery: Delivery,
    decoded: Decoded,
    envelope: Envelope,
    publisher: Publisher,
    services: Services,
    outcome: dict[str, Any] | None = None,
) -> Settle:
    try:
        processed = await process(decoded, envelope, services)
    except Deferral as deferral:
        try:
            await publisher.defer(delivery.body, envelope.deferred(deferral.attempts), deferral.delay_s)
        except BROKER_ERRORS as exc:
            log.warning("request_requeued", reason=f"could not defer: {type(exc).__name__}")
            return Settle.REQUEUE
        metrics.DEFERRED.labels(deferral.code).inc()
        log.info(
            "request_deferred",
            delay_s=round(deferral.delay_s, 1),
            attempts=deferral.attempts,
            error_code=deferral.code,
        )
        return Settle.ACK
    result = processed.result
    try:
        await publisher.result(
            processed.body, envelope, request_id=result.id, status=result.status, replayed=processed.replayed
        )
    except BROKER_ERRORS as exc:
        log.warning("request_requeued", reason=f"could not publish the result: {type(exc).__name__}")
        return Settle.REQUEUE
    record_metrics(processed, envelope)
    if outcome is not None:  # what a monitor is told (task events)
        outcome.update(status=result.status, error=result.error.code if result.error else "")
    log.info(
        "request_done",
        status=result.status,
        http_status=result.http_status,
        error_code=result.error.code if result.error else None,
        attempts=result.attempts,
        duration_ms=result.duration_ms,
        replayed=processed.replayed,
    )
    return Settle.ACK


async def _dead_letter(delivery: Delivery, publisher: Publisher, reason: str) -> Settle:
    properties = delivery.properties
    log.warning("request_dead_lettered", reason=reason, size=len(delivery.body))
    try:
        await publisher.dead_letter(
            delivery.body,
            reason,
            headers=properties.headers,
            correlation_id=delivery.envelope.correlation_id,
            reply_to=delivery.envelope.reply_to,
            content_type=properties.content_type or "application/octet-stream",
        )
    except BROKER_ERRORS as exc:
        log.warning("request_requeued", reason=f"could not dead-letter: {type(exc).__name__}")
        return Settle.REQUEUE
    return Settle.ACK


def record_metrics(processed: Processed, envelope: Envelope) -> None:
    """Count one finished request (labels bounded: unknown operation names are not labels)."""
    result = processed.result
    if processed.replayed:
        metrics.REPLAYED.inc()
        return
    known = result.operation in CATALOG or result.operation in SERVICE_OPERATIONS
    operation = result.operation if known else "unknown"
    requests, duration, attempts = _request_metrics(
        operation, result.status, result.error.code if result.error else ""
    )
    requests.inc()
    duration.observe(result.duration_ms / 1000)
    attempts.inc(max(result.attempts - envelope.attempts_before, 0))


@functools.lru_cache(maxsize=1024)
def _request_metrics(operation: str, status: str, code: str) -> tuple[Any, Any, Any]:
    """The labelled series one request counts in (looked up once per label set: it is on every request)."""
    return (
        metrics.REQUESTS.labels(operation, status, code),
        metrics.REQUEST_DURATION.labels(operation),
        metrics.API_ATTEMPTS.labels(operation),
    )
