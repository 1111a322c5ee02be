"""Publishing from the runtime loop: results, dead letters and requests sent back to wait.

Every publish is persistent, ``mandatory`` and confirmed: the coroutine returns only once RabbitMQ
has taken the message, so the request it answers can be acknowledged after it and nothing is lost.
Many requests publish at once on one channel; their confirms come back in any order and each
coroutine waits only for its own, so confirms are pipelined, never waited for one by one.

A result that no queue takes (its ``reply_to`` queue does not exist) is not dropped: it goes to the
dead-letter queue with the reason, and `metrics.RESULTS_UNROUTABLE` counts it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aiormq
import structlog
from kombu.transport.native_delayed_delivery import calculate_routing_key
from pamqp.commands import Basic

from worker import constants, metrics
from worker.envelope import Envelope
from worker.settings import WorkerSettings
from worker.task_events import TaskEvents

log = structlog.get_logger(__name__)

#: The first exchange of the broker's delay chain (kombu's native delayed delivery, 28 levels).
DELAY_EXCHANGE = "celery_delayed_27"
#: Longest delay the chain can express, in seconds.
MAX_DELAY_S = 2**28 - 1


class Unroutable(Exception):
    """Raised when RabbitMQ returned a mandatory publish: no queue matched its routing key."""


class Publisher:
    """Confirmed, mandatory publishes on one channel of the worker's broker connection."""

    def __init__(
        self,
        channel: aiormq.abc.AbstractChannel,
        settings: WorkerSettings,
        workers_user: str,
        events: TaskEvents | None = None,
    ) -> None:
        self._channel = channel
        self._settings = settings
        self._workers_user = workers_user
        #: Celery task events for monitors (Flower), when the worker sends them.
        self.events = events

    async def publish(
        self,
        body: bytes,
        *,
        routing_key: str,
        exchange: str = "",
        headers: Mapping[str, Any] | None = None,
        correlation_id: str | None = None,
        reply_to: str | None = None,
        content_type: str = "application/json",
        user_id: str | None = None,
    ) -> None:
        """Publish and wait for the confirm; `Unroutable` if returned, `aiormq.exceptions.DeliveryError` if
        refused, an AMQP connection/channel error if the broker went away."""
        properties = Basic.Properties(
            content_type=content_type,
            delivery_mode=2,
            headers=dict(headers or {}),
            correlation_id=correlation_id,
            reply_to=reply_to,
            user_id=user_id,
        )
        try:
            await self._channel.basic_publish(
                body, exchange=exchange, routing_key=routing_key, properties=properties, mandatory=True
            )
        except aiormq.exceptions.PublishError as exc:
            raise Unroutable(f"no queue took the message routed by {routing_key!r}") from exc

    async def result(
        self, body: bytes, envelope: Envelope, *, request_id: str, status: str, replayed: bool = False
    ) -> None:
        """Send a serialized result to ``reply_to`` or the result queue; see the module docstring."""
        headers: dict[str, Any] = {constants.REQUEST_ID_HEADER: request_id, constants.STATUS_HEADER: status}
        if replayed:
            headers[constants.REPLAYED_HEADER] = True
        if envelope.traceparent:
            headers[constants.TRACEPARENT_HEADER] = envelope.traceparent
        queue = envelope.reply_to or self._settings.result_queue
        try:
            await self.publish(
                body, routing_key=queue, headers=headers, correlation_id=envelope.correlation_id
            )
        except Unroutable:
            metrics.RESULTS_UNROUTABLE.inc()
            reason = f"result could not be delivered: no queue named {queue!r} (the request's reply_to)"
            log.error("result_unroutable", queue=queue)
            await self.dead_letter(
                body,
                reason,
                headers=headers,
                correlation_id=envelope.correlation_id,
                source=queue,
                kind="result_unroutable",
            )

    async def dead_letter(
        self,
        body: bytes,
        reason: str,
        *,
        headers: Mapping[str, Any] | None = None,
        correlation_id: str | None = None,
        reply_to: str | None = None,
        source: str | None = None,
        kind: str = "undecodable",
        content_type: str = "application/octet-stream",
    ) -> None:
        """Set a message aside in the dead-letter queue, with why and where it came from."""
        dead_headers = dict(headers or {})
        dead_headers[constants.DEAD_REASON_HEADER] = reason
        dead_headers[constants.DEAD_SOURCE_HEADER] = source or self._settings.request_queue
        await self.publish(
            body,
            routing_key=self._settings.dead_letter_queue,
            headers=dead_headers,
            correlation_id=correlation_id,
            reply_to=reply_to,
            content_type=content_type,
        )
        metrics.DEAD_LETTERED.labels(kind).inc()

    async def defer(self, body: bytes, envelope: Envelope, delay_s: float) -> None:
        """Send a request back to the request queue through the broker's delay chain.

        It arrives again after `delay_s` (whole seconds, at least one) with its envelope; published as
        the workers' own broker user, so the next delivery can trust the envelope's counters.
        """
        delay = min(max(round(delay_s), 1), MAX_DELAY_S)
        await self.publish(
            body,
            exchange=DELAY_EXCHANGE,
            routing_key=calculate_routing_key(delay, self._settings.request_queue),
            headers=envelope.deferred_headers(),
            correlation_id=envelope.correlation_id,
            reply_to=envelope.reply_to,
            user_id=self._workers_user,
        )
