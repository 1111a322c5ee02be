"""A small Python API for callers: publish requests and read results without touching Celery.

It speaks the same plain-AMQP contract as any other client (README, "Message contract")::

    from worker.tools.queue_client import HypatosQueueClient

    with HypatosQueueClient("amqp://guest:guest@rabbit:5672//") as client:
        client.submit({"id": "r1", "connection": "acme", "operation": "documentsGetById",
                       "params": {"id": "62a1..."}})
        for result in client.results(count=1, timeout_s=30):
            print(result["status"], result["data"])

        # or one request with a private reply queue, waiting for its result:
        result = client.call({"id": "r2", "connection": "acme", "operation": "companiesList"})

Every request is published persistent, confirmed and ``mandatory`` (`worker.tools.publishing`): when
no request queue exists yet, `submit` raises `NotRouted` instead of returning as if the request had
been sent, or, with ``wait_for_queue_s``, waits that long for a worker to create the queue.
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import Iterable, Iterator
from typing import Any

from kombu import Connection, Exchange, Queue
from kombu.simple import SimpleQueue

from worker import constants
from worker.messages import Request
from worker.tools.publishing import ConfirmedPublisher, NotRouted

__all__ = ["HypatosQueueClient", "NotRouted"]


class HypatosQueueClient:
    """Publishes requests to the request queue and reads results from a result or reply queue."""

    def __init__(
        self,
        broker_url: str = "amqp://guest:guest@127.0.0.1:5672//",
        *,
        request_queue: str = constants.REQUEST_QUEUE,
        result_queue: str = constants.RESULT_QUEUE,
    ) -> None:
        self.request_queue = request_queue
        self.result_queue = result_queue
        self._connection = Connection(broker_url, transport_options={"confirm_publish": True})
        self._publisher = ConfirmedPublisher(self._connection)

    def __enter__(self) -> HypatosQueueClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def submit(
        self,
        request: dict[str, Any] | Request,
        *,
        correlation_id: str | None = None,
        reply_to: str | None = None,
        wait_for_queue_s: float = 0.0,
    ) -> str:
        """Publish one request (persistent, confirmed, mandatory); returns its correlation id.

        It goes to the request exchange (a fanout exchange named like the request queue, declared with
        it), which is all a producer's broker user needs to be allowed to write to.  Raises `NotRouted`
        when the request queue or exchange does not exist (no worker created them yet), after waiting
        up to `wait_for_queue_s` for them: the request was then not sent.
        """
        body = request.model_dump(exclude_none=True) if isinstance(request, Request) else request
        correlation_id = correlation_id or str(body.get("id") or uuid.uuid4())
        self._publisher.publish(
            json.dumps(body).encode(),
            exchange=self.request_queue,  # the request exchange: all a producer user may write to
            routing_key=self.request_queue,
            wait_for_queue_s=wait_for_queue_s,
            content_type="application/json",
            content_encoding="utf-8",
            correlation_id=correlation_id,
            reply_to=reply_to,
        )
        return correlation_id

    def results(
        self, *, count: int, timeout_s: float = 60.0, queue: str | None = None
    ) -> Iterator[dict[str, Any]]:
        """Yield up to `count` results from `queue` (default: the result queue), acknowledging each."""
        deadline = time.monotonic() + timeout_s
        with SimpleQueue(self._connection.channel(), self._passive(queue or self.result_queue)) as simple:
            for _ in range(count):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                try:
                    message = simple.get(block=True, timeout=remaining)
                except simple.Empty:
                    return
                result = json.loads(message.body)
                message.ack()
                yield result

    def call(
        self, request: dict[str, Any] | Request, *, timeout_s: float = 60.0, wait_for_queue_s: float = 0.0
    ) -> dict[str, Any]:
        """Submit `request` with a private reply queue and wait for its result (`TimeoutError` if none
        came within `timeout_s`; `NotRouted` as for `submit`)."""
        reply = Queue(f"hypatos.reply.{uuid.uuid4().hex}", exclusive=True, auto_delete=True)
        channel = self._connection.channel()
        reply.bind(channel).declare()
        self.submit(request, reply_to=reply.name, wait_for_queue_s=wait_for_queue_s)
        for result in self.results(count=1, timeout_s=timeout_s, queue=reply.name):
            return result
        raise TimeoutError(f"no result within {timeout_s} s")

    def queue_ready(self) -> bool:
        """Whether the request queue exists and a worker consumes it."""
        channel = self._connection.channel()
        try:
            _, _, consumers = channel.queue_declare(queue=self.request_queue, passive=True)
        except self._connection.channel_errors:
            return False
        finally:
            with contextlib.suppress(*self._connection.channel_errors, *self._connection.connection_errors):
                channel.close()
        return bool(consumers > 0)

    def delete_queues(self, names: Iterable[str]) -> None:
        """Delete queues (the demo cleans up after itself); missing ones are fine."""
        for name in names:
            with contextlib.suppress(*self._connection.channel_errors):
                Queue(name).bind(self._connection.channel()).delete()

    def delete_exchanges(self, names: Iterable[str]) -> None:
        """Delete exchanges (the demo's request and task exchanges); missing ones are fine."""
        for name in names:
            with contextlib.suppress(*self._connection.channel_errors):
                Exchange(name).bind(self._connection.channel()).delete()

    @staticmethod
    def _passive(name: str) -> Queue:
        # Read without declaring: the worker declares shared queues with their arguments.
        return Queue(name, no_declare=True)

    def close(self) -> None:
        """Close the broker connection."""
        self._connection.release()
