"""The bridge from plain AMQP to Celery: any client can publish a JSON request, Celery does the work.

`RequestBridge` is a Celery consumer bootstep.  In every worker process it consumes the request
queue and, for each message:

- if the body is a JSON object with a usable ``id``, hands it to the ``hypatos.run`` task (published
  with broker confirms) together with the message's ``reply_to`` and ``correlation_id``, and only then
  acknowledges it;
- otherwise (undecodable, not an object, no usable ``id``: nothing a result could be addressed to)
  publishes it to the dead-letter queue with the reason in a header, then acknowledges it.

Everything else about a request (fields, connection, operation, parameters) is checked by the task,
which answers with a failed result.  If handing on fails, the message is returned to the queue.
"""

from __future__ import annotations

import json
import time
from typing import Any

import structlog
from celery import bootsteps
from kombu import Consumer
from kombu.message import Message

from worker import constants
from worker.messages import MAX_ID_LENGTH
from worker.queues import public_queues, request_queue
from worker.results import publish_confirmed

log = structlog.get_logger(__name__)


class Undeliverable(Exception):
    """Raised when a message has nothing a result could be addressed to."""


def decode_request(body: bytes | str) -> dict[str, Any]:
    """The request object in `body`, or `Undeliverable` saying why there is none."""
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise Undeliverable(f"body is not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise Undeliverable(f"body is JSON {type(document).__name__}, not an object")
    request_id = document.get("id")
    if not isinstance(request_id, str) or not 1 <= len(request_id) <= MAX_ID_LENGTH:
        raise Undeliverable(f"`id` must be a string of 1 to {MAX_ID_LENGTH} characters")
    return document


class RequestBridge(bootsteps.ConsumerStep):
    """Consumes the request queue and hands each request to Celery; see the module docstring."""

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self.app = parent.app
        self.settings = parent.app.settings

    def get_consumers(self, channel: Any) -> list[Consumer]:
        """Declare the public queues and consume requests with a bounded prefetch."""
        for queue in public_queues(self.settings):
            queue.bind(channel).declare()
        channel.basic_qos(0, self.settings.bridge_prefetch, False)
        return [Consumer(channel, queues=[request_queue(self.settings)], on_message=self.on_message)]

    def on_message(self, message: Message) -> None:
        """Hand one request on, or set it aside; acknowledge only once that is done."""
        try:
            try:
                request = decode_request(message.body)
            except Undeliverable as exc:
                self._dead_letter(message, str(exc))
            else:
                self._hand_on(request, message)
        except Exception:
            log.exception("request_handoff_failed")
            message.requeue()
            return
        message.ack()

    def _hand_on(self, request: dict[str, Any], message: Message) -> None:
        properties = message.properties
        self.app.send_task(
            constants.RUN_TASK_NAME,
            kwargs={
                "request": request,
                "reply_to": properties.get("reply_to") or None,
                "correlation_id": properties.get("correlation_id"),
                "first_received_at": time.time(),
            },
            queue=self.settings.task_queue,
            routing_key=self.settings.task_queue,
            retry=True,
        )

    def _dead_letter(self, message: Message, reason: str) -> None:
        log.warning("request_dead_lettered", reason=reason, queue=self.settings.request_queue)
        headers = dict(message.headers or {})
        headers[constants.DEAD_REASON_HEADER] = reason
        headers[constants.DEAD_SOURCE_HEADER] = self.settings.request_queue
        publish_confirmed(
            self.app,
            self.settings.dead_letter_queue,
            message.body if isinstance(message.body, bytes) else str(message.body).encode(),
            content_type=message.content_type or "application/octet-stream",
            headers=headers,
            correlation_id=message.properties.get("correlation_id"),
        )
