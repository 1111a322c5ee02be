"""How the tools publish: persistent, confirmed and ``mandatory``, so that no request is lost unseen.

RabbitMQ confirms a publish even when no queue took it: a request sent to a request queue that no
worker has declared yet is confirmed and dropped.  Published ``mandatory``, such a message comes back
(``basic.return``) before its confirm; `ConfirmedPublisher` notices and raises `NotRouted`, or, when
asked to wait for the queue, sends it again until a queue takes it or the time is up.  Sending again
is safe: a returned message was delivered nowhere.  A publish to an exchange that does not exist
(yet) is treated the same way (RabbitMQ closes the channel instead; a new one is opened).

The return is noticed through an ``on_return`` callback, not py-amqp's exception: that exception is
raised before the message's confirm is read, and the channel's next confirm would then be taken for
the next message's.
"""

from __future__ import annotations

import time
from typing import Any

import amqp.exceptions
from kombu import Connection, Producer

from worker.tools.broker import safe_broker_url

#: How often a publish that found no queue is tried again while waiting for the queue.
RETRY_INTERVAL_S = 0.5


class NotRouted(Exception):
    """Raised when no queue took a publish (none bound, or no such exchange): nothing was delivered."""

    def __init__(
        self, exchange: str, routing_key: str, broker: str, *, exchange_missing: bool = False
    ) -> None:
        self.exchange = exchange
        self.routing_key = routing_key
        if exchange_missing:
            where = f"exchange named {exchange!r}"
        elif exchange:
            where = f"queue bound to the exchange {exchange!r}"
        else:
            where = f"queue named {routing_key!r}"
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
            exchange_missing = False
            try:
                self._producer.publish(
                    body,
                    exchange=exchange,
                    routing_key=routing_key,
                    delivery_mode=2,
                    mandatory=True,
                    retry=True,
                    **properties,
                )
            except amqp.exceptions.NotFound:  # no such exchange: the broker closed the channel
                exchange_missing = True
                self._producer.revive(self._connection.channel())
            if not (self._returned or exchange_missing):
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                broker = safe_broker_url(self._connection)
                raise NotRouted(exchange, routing_key, broker, exchange_missing=exchange_missing)
            time.sleep(min(RETRY_INTERVAL_S, remaining))
