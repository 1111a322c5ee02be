"""How the tools publish: persistent, confirmed and ``mandatory``, so that no request is lost unseen.

RabbitMQ confirms a publish even when no queue took it: a request sent to a request queue that no
worker has declared yet is confirmed and dropped.  Published ``mandatory``, such a message comes back
(``basic.return``) before its confirm; `ConfirmedPublisher` notices and raises `NotRouted`, or, when
asked to wait for the queue, sends it again until a queue takes it or the time is up.  Sending again
is safe: a returned message was delivered nowhere.
"""

from __future__ import annotations

import time
from typing import Any

from kombu import Connection, Producer

from worker.tools.broker import safe_broker_url

#: How often a publish that found no queue is tried again while waiting for the queue.
RETRY_INTERVAL_S = 0.5


class NotRouted(Exception):
    """Raised when RabbitMQ returned a mandatory publish: no queue took it, so nothing was delivered."""

    def __init__(self, exchange: str, routing_key: str, broker: str) -> None:
        self.exchange = exchange
        self.routing_key = routing_key
        where = f"queue named {routing_key!r}" if not exchange else f"queue bound to exchange {exchange!r}"
        super().__init__(
            f"the broker at {broker} has no {where}, so the message was not delivered: start a worker "
            "(workers create their queues) or import the broker definitions "
            "(`hypatos-worker broker-definitions`), then send it again"
        )


class ConfirmedPublisher:
    """Publishes on its own channel of `connection`, one message at a time; see the module docstring."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection
        self._returned: list[str] = []
        self._producer = Producer(connection.channel(), on_return=self._on_return)

    def _on_return(self, _exc: Exception, _exchange: str, routing_key: str, _message: Any) -> None:
        # Called while the publish waits for its confirm: the return always comes before the confirm.
        self._returned.append(routing_key)

    def publish(
        self,
        body: bytes,
        *,
        routing_key: str,
        exchange: str = "",
        wait_for_queue_s: float = 0.0,
        **properties: Any,
    ) -> None:
        """Publish `body` and wait for the confirm; `NotRouted` when no queue took it within
        `wait_for_queue_s` (0: at once).  `properties` are AMQP properties (``correlation_id``...)."""
        deadline = time.monotonic() + wait_for_queue_s
        while True:
            self._returned.clear()
            self._producer.publish(
                body,
                exchange=exchange,
                routing_key=routing_key,
                delivery_mode=2,
                mandatory=True,
                retry=True,
                **properties,
            )
            if not self._returned:
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise NotRouted(exchange, routing_key, safe_broker_url(self._connection))
            time.sleep(min(RETRY_INTERVAL_S, remaining))
