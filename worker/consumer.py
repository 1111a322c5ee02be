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


class RequestConsumer:
    """Consumes the request queue until stopped; see the module docstring."""

    def __init__(self, settings: WorkerSettings, handler: RequestHandler, *, workers_user: str) -> None:
        self._settings = settings
        self._handler = handler
        self._workers_user = workers_user
        self._stopping = asyncio.Event()
        self._running: set[asyncio.Task[None]] = set()
        self._connection: aiormq.abc.AbstractConnection | None = None
        self._channel: aiormq.abc.AbstractChannel | None = None
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
        publisher = Publisher(publish_channel, self._settings, self._workers_user)
        self._channel = consume_channel

        async def on_message(message: DeliveredMessage) -> None:
            task = asyncio.create_task(self._settle(message, consume_channel, publisher))
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

    async def _settle(
        self, message: DeliveredMessage, channel: aiormq.abc.AbstractChannel, publisher: Publisher
    ) -> None:
        delivery = self._delivery(message)
        metrics.IN_FLIGHT.inc()
        try:
            settle = await self._handler(delivery, publisher)
        except Exception:
            log.exception("request_handler_crashed")
            settle = Settle.REQUEUE
        finally:
            metrics.IN_FLIGHT.dec()
        tag = message.delivery_tag
        if tag is None or channel.is_closed:
            log.info(
                "request_not_acknowledged", reason="the broker connection closed; it will be delivered again"
            )
            return
        try:
            if settle is Settle.ACK:
                await channel.basic_ack(tag, wait=False)
            else:
                await channel.basic_nack(tag, requeue=True, wait=False)
        except _CHANNEL_ERRORS as exc:
            log.info("request_not_acknowledged", reason=type(exc).__name__)

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
        await self._close_connection()
        return finished

    async def _close_connection(self) -> None:
        connection, self._connection, self._channel = self._connection, None, None
        if connection is not None and not connection.is_closed:
            with contextlib.suppress(*_CHANNEL_ERRORS, TimeoutError):
                await asyncio.wait_for(connection.close(), timeout=5)
