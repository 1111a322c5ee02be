"""The one Celery task: run a request on this process's runtime and publish its result.

The message is acknowledged after this function returns (``acks_late``), that is, after the result
has been confirmed by the broker.  If publishing fails, the task raises and the request is returned to
the queue to be tried again.
"""

from __future__ import annotations

from typing import Any

import structlog
from celery import Task
from celery.exceptions import Reject

from tasks.execute import execute
from worker import constants
from worker.app import app
from worker.results import publish_result

log = structlog.get_logger(__name__)


@app.task(name=constants.RUN_TASK_NAME, bind=True)
def run(
    self: Task, request: dict[str, Any], reply_to: str | None = None, correlation_id: str | None = None
) -> None:
    """Execute `request` and publish the result to `reply_to` or the result queue."""
    structlog.contextvars.bind_contextvars(
        request_id=request.get("id"), connection=request.get("connection"), operation=request.get("operation")
    )
    try:
        runtime = self.app.runtime
        result = runtime.run(execute(request, runtime.services))
        try:
            publish_result(
                self.app, result, result_queue=runtime.settings.result_queue,
                reply_to=reply_to, correlation_id=correlation_id,
            )  # fmt: skip
        except Exception as exc:
            log.exception("result_publish_failed")
            raise Reject(exc, requeue=True) from exc
        log.info(
            "request_done", status=result.status, http_status=result.http_status,
            error_code=result.error.code if result.error else None,
            attempts=result.attempts, duration_ms=result.duration_ms,
        )  # fmt: skip
    finally:
        structlog.contextvars.clear_contextvars()
