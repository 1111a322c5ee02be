"""The broker topology, declared once: the queues, their types and their dead-letter routing.

The worker declares these at start; `ops/rabbitmq/definitions.json` holds the same declarations for
operators who create queues ahead of time (a test keeps the two in step).  A client that declares a
queue itself must use exactly these arguments, or RabbitMQ refuses the declaration.
"""

from __future__ import annotations

from typing import Any

from kombu import Exchange, Queue

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
        settings.task_queue, exchange, routing_key=settings.task_queue, durable=True,
        queue_arguments=queue_arguments(settings, dead_letter=True),
    )  # fmt: skip


def public_queues(settings: WorkerSettings) -> list[Queue]:
    """The queues callers see, declared by every worker at start."""
    return [request_queue(settings), result_queue(settings), dead_letter_queue(settings)]


def broker_definitions(settings: WorkerSettings, vhost: str = "/") -> dict[str, Any]:
    """The topology as a RabbitMQ definitions document (``rabbitmqctl import_definitions``)."""
    queues = [*public_queues(settings), task_queue(settings)]
    tasks = task_queue(settings)
    return {
        "queues": [
            {
                "name": q.name,
                "vhost": vhost,
                "durable": True,
                "auto_delete": False,
                "arguments": q.queue_arguments,
            }
            for q in queues
        ],
        "exchanges": [
            {
                "name": tasks.exchange.name,
                "vhost": vhost,
                "type": "topic",
                "durable": True,
                "auto_delete": False,
                "internal": False,
                "arguments": {},
            },
        ],
        "bindings": [
            {
                "source": tasks.exchange.name,
                "vhost": vhost,
                "destination": tasks.name,
                "destination_type": "queue",
                "routing_key": tasks.routing_key,
                "arguments": {},
            },
        ],
    }
