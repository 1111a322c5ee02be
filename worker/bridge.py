"""The bridge from plain AMQP to Celery: any client can publish a JSON request, Celery does the work.

In every worker process, `RequestBridge` (a worker bootstep) runs one thread with its own broker
connection.  It consumes the request queue and, for each message:

- if the body is a JSON object with a usable ``id``, publishes the ``hypatos.run`` task for it
  (with the message's ``reply_to`` and ``correlation_id``);
- otherwise (undecodable, not an object, no usable ``id``: nothing a result could be addressed to)
  publishes it to the dead-letter queue with the reason in a header.

The request is acknowledged only when RabbitMQ has confirmed that publish.  Publishes are pipelined:
the bridge does not wait for each confirm before taking the next request; confirms arrive on the same
connection and acknowledge the requests they cover, so hand-off throughput is not bound by the
broker's confirm latency.  A negative confirm returns the request to the queue; a lost connection
leaves every unconfirmed request unacknowledged, and RabbitMQ delivers it again.

Everything else about a request (fields, connection, operation, parameters) is checked by the task,
which answers with a failed result.
"""

from __future__ import annotations

import collections
import contextlib
import json
import threading
import time
from typing import Any

import structlog
from celery import Celery, bootsteps
from kombu import Connection, Consumer, Producer
from kombu.common import maybe_declare
from kombu.message import Message

from worker import constants, metrics
from worker.messages import MAX_ID_LENGTH
from worker.queues import public_queues, request_queue, task_queue
from worker.settings import WorkerSettings

log = structlog.get_logger(__name__)

#: Seconds between reconnection attempts after the broker connection is lost.
RECONNECT_DELAY_S = 2.0
#: How long a stopping bridge waits for outstanding confirms.
STOP_GRACE_S = 10.0


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


#: Header carrying the publish sequence number, so a returned (unroutable) publish can be identified.
HANDOFF_HEADER = "x-hypatos-handoff"


class ConfirmTracker:
    """Maps publisher-confirm sequence numbers to the requests they hand on.

    RabbitMQ numbers a channel's publishes from 1 once confirms are on, and confirms them singly or
    up to a tag (``multiple``); each confirmed request is acknowledged, each refused one requeued.
    Publishes are ``mandatory``: one that no queue would take comes back (before its confirm) and its
    request is requeued rather than acknowledged, so a missing queue or binding cannot lose it.
    """

    def __init__(self) -> None:
        self._last = 0
        self._pending: dict[int, Message] = {}
        self._returned: set[int] = set()

    def __len__(self) -> int:
        return len(self._pending)

    def next_sequence(self) -> int:
        """The sequence number the next publish on the channel will get."""
        return self._last + 1

    def published(self, message: Message) -> None:
        """Record that the hand-off of `message` was just published."""
        self._last += 1
        self._pending[self._last] = message

    def _take(self, delivery_tag: int, multiple: bool) -> list[tuple[int, Message]]:
        tags = [t for t in self._pending if t <= delivery_tag] if multiple else [delivery_tag]
        return [(t, self._pending.pop(t)) for t in sorted(tags) if t in self._pending]

    def on_return(self, exc: Exception, exchange: str, routing_key: str, returned: Any) -> None:
        """A publish no queue took: remember it, so its confirm requeues instead of acknowledging."""
        headers = getattr(returned, "headers", None) or returned.properties.get("application_headers") or {}
        sequence = headers.get(HANDOFF_HEADER)
        log.error("request_handoff_unroutable", exchange=exchange, routing_key=routing_key, reason=str(exc))
        if isinstance(sequence, int):
            self._returned.add(sequence)

    def on_ack(self, delivery_tag: int, multiple: bool = False) -> None:
        """The broker holds the hand-off: acknowledge the request (requeue it if it was returned)."""
        for sequence, message in self._take(delivery_tag, multiple):
            if sequence in self._returned:
                self._returned.discard(sequence)
                message.requeue()
            else:
                message.ack()

    def on_nack(self, delivery_tag: int, multiple: bool = False) -> None:
        """The broker refused the hand-off: return the request to its queue."""
        for sequence, message in self._take(delivery_tag, multiple):
            log.warning("request_handoff_refused")
            self._returned.discard(sequence)
            message.requeue()

    def forget(self) -> None:
        """The connection is gone; RabbitMQ redelivers what was not acknowledged."""
        self._pending.clear()
        self._returned.clear()


class BridgeLoop:
    """One connection: consume requests, publish hand-offs, acknowledge on confirm."""

    def __init__(self, app: Celery, settings: WorkerSettings, stopping: threading.Event) -> None:
        self.app = app
        self.settings = settings
        self.stopping = stopping
        self.tracker = ConfirmTracker()
        self.producer: Producer | None = None
        self.confirms = False
        #: Deliveries wait here until the loop handles them, outside the drain call: handling may
        #: block on the broker (a declaration), which drains again and must not re-enter the handler.
        self.inbox: collections.deque[Message] = collections.deque()

    def serve(self, connection: Connection) -> None:
        """Run until `stopping` is set or the connection fails."""
        consume_channel = connection.channel()
        for queue in public_queues(self.settings):
            queue.bind(consume_channel).declare()
        consume_channel.basic_qos(0, self.settings.bridge_prefetch, False)
        publish_channel = self._publish_channel(connection)
        maybe_declare(task_queue(self.settings), publish_channel)  # so publishing never waits for it
        self.producer = Producer(publish_channel)
        queues = [request_queue(self.settings)]
        consumer = Consumer(consume_channel, queues=queues, on_message=self.inbox.append)
        consumer.consume()
        log.info("bridge_consuming", queue=self.settings.request_queue, confirms=self.confirms)
        while not self.stopping.is_set():
            self._drain(connection, timeout_s=1.0)
            while self.inbox:
                self.on_message(self.inbox.popleft())
        consumer.cancel()
        self.inbox.clear()  # not acknowledged: RabbitMQ delivers them again
        deadline = time.monotonic() + STOP_GRACE_S
        while len(self.tracker) and time.monotonic() < deadline:
            self._drain(connection, timeout_s=0.5)

    def _publish_channel(self, connection: Connection) -> Any:
        channel = connection.channel()
        self.confirms = hasattr(channel, "confirm_select") and connection.transport.driver_type == "amqp"
        if self.confirms:
            channel.confirm_select()
            channel.events["basic_ack"].add(self.tracker.on_ack)
            channel.events["basic_nack"].add(self.tracker.on_nack)
            channel.events["basic_return"].add(self.tracker.on_return)
        return channel

    @staticmethod
    def _drain(connection: Connection, timeout_s: float) -> None:
        with contextlib.suppress(TimeoutError):  # socket.timeout: nothing arrived in time
            connection.drain_events(timeout=timeout_s)
        connection.heartbeat_check()

    def on_message(self, message: Message) -> None:
        """Hand one request on, or set it aside; it is acknowledged when the publish is confirmed."""
        try:
            request = decode_request(message.body)
        except Undeliverable as exc:
            self._dead_letter(message, str(exc))
        else:
            self._hand_on(request, message)
        if self.confirms:
            self.tracker.published(message)
        else:
            message.ack()  # a broker without confirms (the embedded one) has taken it on publish

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
            kwargsrepr=f"{{'id': {request.get('id')!r}, 'operation': {request.get('operation')!r}}}",
            argsrepr="()",
            queue=self.settings.task_queue,
            routing_key=self.settings.task_queue,
            producer=self.producer,
            headers={HANDOFF_HEADER: self.tracker.next_sequence()},
            mandatory=True,
        )

    def _dead_letter(self, message: Message, reason: str) -> None:
        log.warning("request_dead_lettered", reason=reason, queue=self.settings.request_queue)
        metrics.DEAD_LETTERED.inc()
        headers = dict(message.headers or {})
        headers[constants.DEAD_REASON_HEADER] = reason
        headers[constants.DEAD_SOURCE_HEADER] = self.settings.request_queue
        headers[HANDOFF_HEADER] = self.tracker.next_sequence()
        properties: dict[str, Any] = {}
        if message.properties.get("correlation_id"):
            properties["correlation_id"] = message.properties["correlation_id"]
        assert self.producer is not None
        self.producer.publish(
            message.body if isinstance(message.body, bytes) else str(message.body).encode(),
            exchange="",
            routing_key=self.settings.dead_letter_queue,
            content_type=message.content_type or "application/octet-stream",
            content_encoding=message.content_encoding or "binary",
            headers=headers,
            delivery_mode=2,
            mandatory=True,
            **properties,
        )


class RequestBridge(bootsteps.StartStopStep):
    """Worker bootstep running the bridge thread; see the module docstring."""

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self.app = parent.app
        self.settings: WorkerSettings = parent.app.settings
        self.stopping = threading.Event()
        self.thread: threading.Thread | None = None

    def start(self, parent: Any) -> None:
        """Start the bridge thread."""
        self.thread = threading.Thread(target=self._run, name="hypatos-bridge", daemon=True)
        self.thread.start()

    def stop(self, parent: Any) -> None:
        """Stop taking requests and settle outstanding confirms (warm shutdown)."""
        self.stopping.set()
        if self.thread is not None:
            self.thread.join(STOP_GRACE_S + 5)

    def _run(self) -> None:
        while not self.stopping.is_set():
            loop = BridgeLoop(self.app, self.settings, self.stopping)
            connection = Connection(self.settings.broker_url, heartbeat=30)
            try:
                with connection:
                    connection.ensure_connection(max_retries=1)
                    loop.serve(connection)
            except Exception as exc:  # connection loss or a bug: reconnect, never stop serving
                loop.tracker.forget()
                expected = isinstance(exc, (*connection.connection_errors, *connection.channel_errors))
                log.warning("bridge_reconnecting", error=type(exc).__name__, detail=str(exc)[:200],
                            exc_info=not expected)  # fmt: skip
                self.stopping.wait(RECONNECT_DELAY_S)
