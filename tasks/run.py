"""The one Celery task: run a request on this process's runtime and publish its result.

The task message is acknowledged after this function returns (``acks_late``): after the result has
been stored and confirmed by the broker, or after the retry message has been confirmed.  If
publishing fails, the task message goes back to the queue and the request is tried again.
"""

from __future__ import annotations

import math
import time
from typing import Any

import structlog
from celery import Task
from celery.exceptions import Reject, Retry

from tasks.catalog import CATALOG
from tasks.execute import process
from tasks.outcomes import Deferral, Delivery, Processed
from tasks.service_operations import SERVICE_OPERATIONS
from worker import constants, metrics
from worker.app import app
from worker.results import publish_result

log = structlog.get_logger(__name__)


@app.task(name=constants.RUN_TASK_NAME, bind=True, max_retries=None)
def run(
    self: Task,
    request: dict[str, Any],
    reply_to: str | None = None,
    correlation_id: str | None = None,
    first_received_at: float | None = None,
    attempts_before: int = 0,
    deferrals: int = 0,
) -> None:
    """Execute `request` and publish the result to `reply_to` or the result queue."""
    context = request if isinstance(request, dict) else {}
    structlog.contextvars.bind_contextvars(
        request_id=context.get("id"), connection=context.get("connection"), operation=context.get("operation")
    )
    delivery = Delivery(first_received_at or time.time(), attempts_before, deferrals)
    metrics.IN_FLIGHT.inc()
    try:
        _run(self, request, reply_to, correlation_id, delivery)
    except (Retry, Reject):
        raise
    except Exception as exc:
        # A bug or a corrupt task message: back to the queue; RabbitMQ dead-letters it after
        # HYPATOS_DELIVERY_LIMIT deliveries, so a poison message cannot wedge the workers.
        log.exception("task_crashed")
        raise Reject(exc, requeue=True) from exc
    finally:
        metrics.IN_FLIGHT.dec()
        structlog.contextvars.clear_contextvars()


def _run(
    task: Task, request: dict[str, Any], reply_to: str | None, correlation_id: str | None, delivery: Delivery
) -> None:
    """Process, then publish or defer; see the module docstring."""
    runtime = task.app.runtime
    try:
        processed = runtime.run(process(request, runtime.services, delivery))
    except Deferral as deferral:
        metrics.DEFERRED.labels(deferral.code).inc()
        log.info("request_deferred", delay_s=round(deferral.delay_s, 1), attempts=deferral.attempts,
                 error_code=deferral.code)  # fmt: skip
        raise task.retry(
            kwargs={"request": request, "reply_to": reply_to, "correlation_id": correlation_id,
                    "first_received_at": delivery.first_received_at, "attempts_before": deferral.attempts,
                    "deferrals": delivery.deferrals + 1},
            countdown=math.ceil(deferral.delay_s),
        ) from None  # fmt: skip
    result = processed.result
    try:
        publish_result(
            task.app, result, result_queue=runtime.settings.result_queue,
            reply_to=reply_to, correlation_id=correlation_id, replayed=processed.replayed,
        )  # fmt: skip
    except Exception as exc:
        log.exception("result_publish_failed")
        raise Reject(exc, requeue=True) from exc
    record_metrics(processed, delivery)
    log.info(
        "request_done", status=result.status, http_status=result.http_status,
        error_code=result.error.code if result.error else None,
        attempts=result.attempts, duration_ms=result.duration_ms, replayed=processed.replayed,
    )  # fmt: skip


def record_metrics(processed: Processed, delivery: Delivery) -> None:
    """Count one finished request (labels bounded: unknown operation names are not labels)."""
    result = processed.result
    if processed.replayed:
        metrics.REPLAYED.inc()
        return
    known = result.operation in CATALOG or result.operation in SERVICE_OPERATIONS
    operation = result.operation if known else "unknown"
    code = result.error.code if result.error else ""
    metrics.REQUESTS.labels(operation, result.status, code).inc()
    metrics.REQUEST_DURATION.labels(operation).observe(result.duration_ms / 1000)
    metrics.API_ATTEMPTS.labels(operation).inc(max(result.attempts - delivery.attempts_before, 0))
