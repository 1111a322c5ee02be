"""Running the request handler without a broker, in this process (``hypatos-worker demo`` without RabbitMQ).

The worker's own handler (`tasks.handle.handle_request`) runs on real `Services` (HTTP session,
tokens, result store) exactly as in a worker process; only the broker is replaced:
`CollectingPublisher` keeps each message the handler publishes instead of sending it, and a request
the handler sends back to wait is handed to it again after its delay, as the broker's delay chain
would.  Nothing here is a second implementation of the request path.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pamqp.commands import Basic

from tasks.handle import handle_request
from worker.constants import DEAD_REASON_HEADER
from worker.consumer import Delivery
from worker.envelope import Envelope
from worker.publisher import Publisher
from worker.runtime import Services, load_registry, open_services
from worker.settings import WorkerSettings

#: The broker user the stand-in publishes as (so a request sent back to wait keeps its counters).
WORKERS_USER = "in-process"


@dataclass(frozen=True)
class Published:
    """One message the handler published."""

    body: bytes
    exchange: str
    routing_key: str
    headers: Mapping[str, Any]


class CollectingPublisher(Publisher):
    """A `Publisher` without a broker: every publish is kept, as if a queue had taken it.

    Results and dead letters go through `Publisher`'s own methods (headers, routing, reasons);
    `defer` keeps the request and its next envelope for the caller to hand over again later.
    """

    def __init__(self, settings: WorkerSettings) -> None:
        super().__init__(None, settings, WORKERS_USER)  # type: ignore[arg-type]  # no channel: nothing is sent
        self.settings = settings
        self.published: list[Published] = []
        self.deferred: tuple[bytes, Envelope, float] | None = None

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
        """Keep the message (see the class docstring)."""
        self.published.append(Published(body, exchange, routing_key, dict(headers or {})))

    async def defer(self, body: bytes, envelope: Envelope, delay_s: float) -> None:
        """Keep the request to hand it over again after `delay_s`."""
        self.deferred = (body, envelope, delay_s)

    def results(self) -> list[bytes]:
        """Bodies published to the result queue (no request here names a ``reply_to``)."""
        return [m.body for m in self.published if m.routing_key == self.settings.result_queue]

    def dead_letters(self) -> list[str]:
        """Why each message set aside could not be answered."""
        return [
            str(m.headers.get(DEAD_REASON_HEADER, ""))
            for m in self.published
            if m.routing_key == self.settings.dead_letter_queue
        ]


def _delivery(body: bytes, envelope: Envelope | None) -> Delivery:
    properties = Basic.Properties(content_type="application/json", delivery_mode=2, headers={})
    return Delivery(
        body=body,
        properties=properties,
        envelope=envelope or Envelope.from_message(properties, workers_user=WORKERS_USER, now=time.time()),
    )


async def _handle_one(
    body: bytes, settings: WorkerSettings, services: Services, deadline: float
) -> CollectingPublisher:
    envelope: Envelope | None = None
    while True:
        publisher = CollectingPublisher(settings)
        await handle_request(_delivery(body, envelope), publisher, services)
        if publisher.deferred is None:
            return publisher
        body, envelope, delay_s = publisher.deferred
        if time.monotonic() + delay_s > deadline:
            return publisher  # out of time: no result for this one
        await asyncio.sleep(delay_s)


async def handle_without_broker(
    settings: WorkerSettings,
    bodies: list[bytes],
    *,
    timeout_s: float = 60.0,
    on_done: Callable[[int], None] | None = None,
) -> tuple[list[bytes], list[str]]:
    """Run each request body through the handler at once; (result bodies, dead-letter reasons).

    `on_done` is called with the number of requests finished so far, after each one.
    """
    services = await open_services(settings, load_registry(settings))
    deadline = time.monotonic() + timeout_s
    results: list[bytes] = []
    dead: list[str] = []
    try:
        for finished, done in enumerate(
            asyncio.as_completed([_handle_one(b, settings, services, deadline) for b in bodies]), 1
        ):
            publisher = await done
            results += publisher.results()
            dead += publisher.dead_letters()
            if on_done is not None:
                on_done(finished)
    finally:
        await services.close()
    return results, dead
