"""The broker topology, declared once: queues, exchanges, their arguments and bindings.

- The request queue, where producers' requests wait.  Producers publish either to the default
  exchange with the queue's name as routing key, or to the *request exchange* (a fanout exchange of
  the same name bound to the request queue), which lets an operator grant producers write access to
  that one exchange and nothing else (README, "Security model").
- The result and dead-letter queues.
- The delay chain that holds requests waiting to be retried: kombu's native delayed delivery (28
  levels of queues with a message TTL of 2^level seconds, ``celery_delayed_*``, shared with Celery's
  own countdowns), whose delivery exchange is bound to the request queue.
- Celery's internal task queue, for the service's own background tasks.

Workers declare all of it at start (`declare_topology`); `ops/rabbitmq/definitions.json` holds the
same declarations for operators who create them ahead of time (a test keeps the two in step).  A
client that declares a queue itself must use exactly these arguments, or RabbitMQ refuses it.
"""

from __future__ import annotations

from typing import Any

from kombu import Connection, Exchange, Queue
from kombu.transport.native_delayed_delivery import (
    CELERY_DELAYED_DELIVERY_EXCHANGE,
    MAX_LEVEL,
    declare_native_delayed_delivery_exchanges_and_queues,
    level_name,
)

from worker.settings import WorkerSettings


def queue_arguments(settings: WorkerSettings, *, dead_letter: bool) -> dict[str, Any]:
    """Arguments for a durable queue; `dead_letter` routes rejected messages to the dead-letter queue."""
    arguments: dict[str, Any] = {"x-queue-type": settings.queue_type}
    if dead_letter:
        arguments["x-dead-letter-exchange"] = ""
        arguments["x-dead-letter-routing-key"] = settings.dead_letter_queue
        if settings.queue_type == "quorum":
            arguments["x-delivery-limit"] = settings.delivery_limit
    return arguments


def _plain_queue(name: str, settings: WorkerSettings, *, dead_letter: bool) -> Queue:
    """A durable queue reached through the default exchange (routing key = queue name)."""
    return Queue(
        name,
        routing_key=name,
        durable=True,
        queue_arguments=queue_arguments(settings, dead_letter=dead_letter),
    )


def request_queue(settings: WorkerSettings) -> Queue:
    """Where callers publish requests."""
    return _plain_queue(settings.request_queue, settings, dead_letter=True)


def request_exchange(settings: WorkerSettings) -> Exchange:
    """The fanout exchange producers may publish requests to instead of the default exchange."""
    return Exchange(settings.request_queue, type="fanout", durable=True)


def result_queue(settings: WorkerSettings) -> Queue:
    """Where results go when a request names no ``reply_to``."""
    return _plain_queue(settings.result_queue, settings, dead_letter=False)


def dead_letter_queue(settings: WorkerSettings) -> Queue:
    """Where messages that cannot be processed are kept for inspection and replay."""
    return _plain_queue(settings.dead_letter_queue, settings, dead_letter=False)


def task_queue(settings: WorkerSettings) -> Queue:
    """Celery's internal queue; a topic exchange so Celery's native delayed delivery can reach it."""
    exchange = Exchange(settings.task_queue, type="topic", durable=True)
    return Queue(
        settings.task_queue,
        exchange,
        routing_key=settings.task_queue,
        durable=True,
        queue_arguments=queue_arguments(settings, dead_letter=True),
    )


def delayed_binding_key(settings: WorkerSettings) -> str:
    """How the delay chain's delivery exchange finds the request queue (kombu's ``#.<routing key>``)."""
    return f"#.{settings.request_queue}"


def public_queues(settings: WorkerSettings) -> list[Queue]:
    """The queues callers see, declared by every worker at start."""
    return [request_queue(settings), result_queue(settings), dead_letter_queue(settings)]


#: The delay chain's queues (kombu's names, the same for every deployment).
DELAY_QUEUES = frozenset(level_name(level) for level in range(MAX_LEVEL + 1))


def internal_queue_names(settings: WorkerSettings) -> frozenset[str]:
    """Queues no result may be sent to (a ``reply_to`` naming one is refused)."""
    return DELAY_QUEUES | {settings.request_queue, settings.dead_letter_queue, settings.task_queue}


def declare_topology(connection: Connection, settings: WorkerSettings) -> None:
    """Declare everything the workers need (idempotent; raises the broker's error on a mismatch)."""
    channel = connection.channel()
    try:
        for queue in [*public_queues(settings), task_queue(settings)]:
            queue.bind(channel).declare()
        exchange = request_exchange(settings).bind(channel)
        exchange.declare()
        channel.queue_bind(settings.request_queue, exchange=exchange.name, routing_key="")
        declare_native_delayed_delivery_exchanges_and_queues(connection, settings.queue_type)
        channel.queue_bind(
            settings.request_queue,
            exchange=CELERY_DELAYED_DELIVERY_EXCHANGE,
            routing_key=delayed_binding_key(settings),
        )
    finally:
        channel.close()


def _delay_chain_definitions(settings: WorkerSettings, vhost: str) -> dict[str, list[dict[str, Any]]]:
    """kombu's native delayed delivery topology (see its ``declare_native_delayed_delivery_...``)."""
    queues, exchanges, bindings = [], [], []
    for level in range(MAX_LEVEL, -1, -1):
        name = level_name(level)
        arguments: dict[str, Any] = {
            "x-queue-type": settings.queue_type,
            "x-overflow": "reject-publish",
            "x-message-ttl": 2**level * 1000,
            "x-dead-letter-exchange": level_name(level - 1)
            if level > 0
            else CELERY_DELAYED_DELIVERY_EXCHANGE,
        }
        if settings.queue_type == "quorum":
            arguments["x-dead-letter-strategy"] = "at-least-once"
        queues.append(_queue_definition(name, vhost, arguments))
        exchanges.append(_exchange_definition(name, vhost, "topic"))
        bits = "*." * (MAX_LEVEL - level)
        bindings.append(_binding_definition(name, name, "queue", f"{bits}1.#", vhost))
        if level > 0:
            bindings.append(_binding_definition(name, level_name(level - 1), "exchange", f"{bits}0.#", vhost))
    exchanges.append(_exchange_definition(CELERY_DELAYED_DELIVERY_EXCHANGE, vhost, "topic"))
    bindings.append(
        _binding_definition(
            level_name(0), CELERY_DELAYED_DELIVERY_EXCHANGE, "exchange", "*." * MAX_LEVEL + "0.#", vhost
        )
    )
    return {"queues": queues, "exchanges": exchanges, "bindings": bindings}


def _queue_definition(name: str, vhost: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "vhost": vhost, "durable": True, "auto_delete": False, "arguments": arguments}


def _exchange_definition(name: str, vhost: str, kind: str) -> dict[str, Any]:
    return {
        "name": name,
        "vhost": vhost,
        "type": kind,
        "durable": True,
        "auto_delete": False,
        "internal": False,
        "arguments": {},
    }


def _binding_definition(source: str, destination: str, kind: str, key: str, vhost: str) -> dict[str, Any]:
    return {
        "source": source,
        "vhost": vhost,
        "destination": destination,
        "destination_type": kind,
        "routing_key": key,
        "arguments": {},
    }


def broker_definitions(settings: WorkerSettings, vhost: str = "/") -> dict[str, Any]:
    """The topology as a RabbitMQ definitions document (``rabbitmqctl import_definitions``)."""
    tasks = task_queue(settings)
    chain = _delay_chain_definitions(settings, vhost)
    own_queues = [*public_queues(settings), tasks]
    return {
        "queues": [_queue_definition(q.name, vhost, dict(q.queue_arguments or {})) for q in own_queues]
        + chain["queues"],
        "exchanges": [
            _exchange_definition(settings.request_queue, vhost, "fanout"),
            _exchange_definition(tasks.exchange.name, vhost, "topic"),
            *chain["exchanges"],
        ],
        "bindings": [
            _binding_definition(settings.request_queue, settings.request_queue, "queue", "", vhost),
            _binding_definition(tasks.exchange.name, tasks.name, "queue", str(tasks.routing_key), vhost),
            *chain["bindings"],
            _binding_definition(
                CELERY_DELAYED_DELIVERY_EXCHANGE,
                settings.request_queue,
                "queue",
                delayed_binding_key(settings),
                vhost,
            ),
        ],
    }
