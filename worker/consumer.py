"""The request consumer: takes requests from the request queue and settles each one, on the runtime loop.

One `RequestConsumer` per worker process holds its own broker connection (aiormq, on the process's
asyncio loop) with two channels: one consumes the request queue with a prefetch of
``HYPATOS_CONCURRENCY`` (so that many requests are in flight at once), the other publishes results,
dead letters and deferred requests with publisher confirms (`worker.publisher`).  Each delivery runs
as its own task through the request handler, which returns how to settle it:

- `Settle.ACK` once the next step holds the request (its result, dead letter or deferred copy was
  confirmed by the broker);
- `Settle.REQUEUE` when that step failed (the broker is going away, or the handler crashed): the
  request goes back to the queue, and after ``HYPATOS_DELIVERY_LIMIT`` deliveries RabbitMQ moves it
  to the dead-letter queue.

A lost connection is re-established with a growing interval (1 s doubling to 30 s); requests that
were running go on to their end (their results are stored), but cannot be acknowledged: RabbitMQ
delivers them again, and the next delivery publishes the stored result.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiormq
import structlog
from aiormq.abc import DeliveredMessage

from worker import metrics
from worker.amqp import amqp_url, queue_declare_arguments
from worker.envelope import Envelope
from worker.publisher import Publisher
from worker.queues import request_queue
from worker.settings import WorkerSettings
from worker.task_events import TaskEvents

log = structlog.get_logger(__name__)

#: Reconnection interval bounds, in seconds.
RECONNECT_INITIAL_S = 1.0
RECONNECT_MAX_S = 30.0
#: What a call on a channel raises when the broker or the connection is gone.
_CHANNEL_ERRORS = (aiormq.exceptions.AMQPError, aiormq.exceptions.ChannelInvalidStateError, OSError)


class Settle(enum.Enum):
    """What to do with a delivered request once the handler is done with it."""

    ACK = "ack"
    REQUEUE = "requeue"


@dataclass(frozen=True)
class Delivery:
    """One delivered request message, as the handler sees it."""

    body: bytes
    properties: Any
    envelope: Envelope
    #: Times RabbitMQ delivered this message before (quorum queues' ``x-delivery-count``).
    delivery_count: int = 0


RequestHandler = Callable[[Delivery, Publisher], Awaitable[Settle]]


class Acknowledger:
    """Settles a channel's deliveries in as few frames as it can.

    Handlers finish in any order; each loop iteration, the settled deliveries at the front (all
    acknowledged, in delivery order) go out as one ``basic.ack`` with ``multiple``, the others one
    by one.  Nothing waits for a slow neighbour: a delivery still running only stops the batch.
    """

    def __init__(self, channel: aiormq.abc.AbstractChannel) -> None:
        self._channel = channel
        #: Delivery tag -> settlement, None while the request runs; in delivery (tag) order.
        self._open: dict[int, Settle | None] = {}
        self._flush_pending = False
        self._sending: set[asyncio.Future[None]] = set()

    def delivered(self, tag: int | None) -> None:
        """A delivery arrived; it will be settled later."""
        if tag is not None:
            self._open[tag] = None

    def settle(self, tag: int | None, settle: Settle) -> None:
        """The handler is done with a delivery; it is settled at the end of this loop iteration."""
        if tag is None or tag not in self._open:
            return
        self._open[tag] = settle
        if not self._flush_pending:
            self._flush_pending = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_pending = False
        if self._channel.is_closed:
            log.info(
                "requests_not_acknowledged",
                count=len(self._open),
                reason="the broker connection closed; they will be delivered again",
            )
            self._open.clear()
            return
        last_acked = None
        for tag, settle in self._open.items():
            if settle is not Settle.ACK:
                break
            last_acked = tag
        frames: list[Any] = []
        if last_acked is not None:
            for tag in [t for t in self._open if t <= last_acked]:
                del self._open[tag]
            frames.append(self._channel.basic_ack(last_acked, multiple=True, wait=False))
        for tag, settle in [(t, s) for t, s in self._open.items() if s is not None]:
            del self._open[tag]
            if settle is Settle.ACK:
                frames.append(self._channel.basic_ack(tag, wait=False))
            else:
                frames.append(self._channel.basic_nack(tag, requeue=True, wait=False))
        if frames:
            task = asyncio.ensure_future(self._send(frames))
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)

    async def drain(self) -> None:
        """Settle what is settled now and wait until those frames are written (before closing)."""
        if self._flush_pending or any(settle is not None for settle in self._open.values()):
            self._flush()
        if self._sending:
            await asyncio.wait(set(self._sending))

    @staticmethod
    async def _send(frames: list[Any]) -> None:
        for frame in frames:
            try:
                await frame
            except _CHANNEL_ERRORS as exc:
                log.info("request_not_acknowledged", reason=type(exc).__name__)


class RequestConsumer:
    """Consumes the request queue until stopped; see the module docstring."""

    def __init__(
        self,
        settings: WorkerSettings,
        handler: RequestHandler,
        *,
        workers_user: str,
        events: TaskEvents | None = None,
    ) -> None:
        self._settings = settings
        self._handler = handler
        self._workers_user = workers_user
        self._events = events
        self._stopping = asyncio.Event()
        self._running: set[asyncio.Task[None]] = set()
        self._connection: aiormq.abc.AbstractConnection | None = None
        self._channel: aiormq.abc.AbstractChannel | None = None
        self._acks: Acknowledger | None = None
        self._consumer_tag: str | None = None
        #: True while the queue is being consumed (health and `hypatos_consumer_up`).
        self.consuming = False

    @property
    def in_flight(self) -> int:
        """Requests being handled now."""
        return len(self._running)

    async def run(self) -> None:
        """Consume, reconnecting after any loss, until `stop` is called."""
        delay_s = RECONNECT_INITIAL_S
        while not self._stopping.is_set():
            try:
                await self._serve()
                delay_s = RECONNECT_INITIAL_S
            except (aiormq.exceptions.AMQPError, OSError, TimeoutError) as exc:
                log.warning(
                    "consumer_reconnecting",
                    error=type(exc).__name__,
                    detail=str(exc)[:300],
                    retry_in_s=delay_s,
                )
            if self._stopping.is_set():
                return  # `stop` closes the connection once the requests in flight are settled
            self._set_consuming(False)
            await self._close_connection()
            await self._sleep_unless_stopping(delay_s)
            delay_s = min(delay_s * 2, RECONNECT_MAX_S)

    async def _serve(self) -> None:
        connection = await aiormq.connect(amqp_url(self._settings.broker_url))
        self._connection = connection
        consume_channel = await connection.channel(publisher_confirms=False)
        publish_channel = await connection.channel(publisher_confirms=True)
        queue = request_queue(self._settings)
        await consume_channel.queue_declare(
            queue.name, durable=True, arguments=queue_declare_arguments(queue)
        )
        await consume_channel.basic_qos(prefetch_count=self._settings.concurrency)
        if self._events is not None:
            await self._events.attach(connection)
        publisher = Publisher(publish_channel, self._settings, self._workers_user, self._events)
        self._channel = consume_channel

        acks = self._acks = Acknowledger(consume_channel)

        async def on_message(message: DeliveredMessage) -> None:
            acks.delivered(message.delivery_tag)
            task = asyncio.create_task(self._settle(message, acks, publisher))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

        consume_ok = await consume_channel.basic_consume(queue.name, on_message, no_ack=False)
        self._consumer_tag = consume_ok.consumer_tag
        self._set_consuming(True)
        log.info("consumer_started", queue=queue.name, prefetch=self._settings.concurrency)
        closing = asyncio.ensure_future(connection.closing)
        stopping = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait({closing, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
        if closing.done() and not self._stopping.is_set():
            raise aiormq.exceptions.ConnectionClosed(320, "the broker connection closed")

    async def _settle(self, message: DeliveredMessage, acks: Acknowledger, publisher: Publisher) -> None:
        delivery = self._delivery(message)
        metrics.IN_FLIGHT.inc()
        try:
            settle = await self._handler(delivery, publisher)
        except Exception:
            log.exception("request_handler_crashed", deliveries_before=delivery.delivery_count)
            settle = Settle.REQUEUE
        finally:
            metrics.IN_FLIGHT.dec()
        acks.settle(message.delivery_tag, settle)

    def _delivery(self, message: DeliveredMessage) -> Delivery:
        properties = message.header.properties
        headers = properties.headers or {}
        count = headers.get("x-delivery-count")
        return Delivery(
            body=message.body,
            properties=properties,
            envelope=Envelope.from_message(properties, workers_user=self._workers_user, now=time.time()),
            delivery_count=count if isinstance(count, int) and not isinstance(count, bool) else 0,
        )

    def _set_consuming(self, consuming: bool) -> None:
        self.consuming = consuming
        metrics.CONSUMER_UP.set(1 if consuming else 0)

    async def _sleep_unless_stopping(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)

    async def stop(self, timeout_s: float) -> bool:
        """Stop taking requests, let those in flight finish within `timeout_s`; whether they all did."""
        self._stopping.set()
        channel, tag = self._channel, self._consumer_tag
        if channel is not None and tag is not None and not channel.is_closed:
            with contextlib.suppress(*_CHANNEL_ERRORS):
                await channel.basic_cancel(tag)
        self._set_consuming(False)
        finished = True
        if self._running:
            _, pending = await asyncio.wait(set(self._running), timeout=timeout_s)
            finished = not pending
        if self._acks is not None:  # the last acknowledgements go out before the connection closes
            with contextlib.suppress(*_CHANNEL_ERRORS, TimeoutError):
                await asyncio.wait_for(self._acks.drain(), timeout=5)
        await self._close_connection()
        return finished

    async def _close_connection(self) -> None:
        connection, self._connection, self._channel = self._connection, None, None
        if connection is not None and not connection.is_closed:
            with contextlib.suppress(*_CHANNEL_ERRORS, TimeoutError):
                await asyncio.wait_for(connection.close(), timeout=5)
