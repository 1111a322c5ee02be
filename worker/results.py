"""Publishing to the broker with confirms: results, and messages set aside as dead letters.

The broker connection is opened with ``confirm_publish``, so `publish_confirmed` returns only once
RabbitMQ has taken responsibility for the message; callers acknowledge the message they are
answering only after that, which is what makes the service lose nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from celery import Celery

from worker.messages import Result

#: Retry policy for publishing while the broker connection is being re-established.
PUBLISH_RETRY_POLICY = {"max_retries": 10, "interval_start": 0.2, "interval_step": 0.5, "interval_max": 3.0}


def publish_confirmed(
    app: Celery,
    routing_key: str,
    body: bytes,
    *,
    content_type: str = "application/json",
    headers: Mapping[str, Any] | None = None,
    correlation_id: str | None = None,
) -> None:
    """Publish a persistent message to the default exchange and wait for the broker's confirm."""
    properties: dict[str, Any] = {}
    if correlation_id is not None:
        properties["correlation_id"] = correlation_id
    with app.producer_or_acquire() as producer:
        producer.publish(
            body,
            exchange="",
            routing_key=routing_key,
            content_type=content_type,
            content_encoding="utf-8" if content_type.startswith(("application/json", "text/")) else "binary",
            headers=dict(headers or {}),
            delivery_mode=2,
            retry=True,
            retry_policy=PUBLISH_RETRY_POLICY,
            **properties,
        )


def publish_result(
    app: Celery,
    result: Result,
    *,
    result_queue: str,
    reply_to: str | None,
    correlation_id: str | None,
    replayed: bool = False,
) -> None:
    """Send `result` to the caller's ``reply_to`` queue, or to the result queue."""
    headers: dict[str, Any] = {"x-hypatos-request-id": result.id, "x-hypatos-status": result.status}
    if replayed:
        headers["x-hypatos-replayed"] = True
    publish_confirmed(
        app,
        reply_to or result_queue,
        result.model_dump_json().encode(),
        headers=headers,
        correlation_id=correlation_id,
    )
