"""Small bridges between kombu's view of the broker (URLs, `Queue` declarations) and aiormq's.

The settings speak kombu (``HYPATOS_BROKER_URL`` in kombu's syntax, queues declared in `worker.queues`
as kombu `Queue` objects); the request consumer speaks aiormq.  These helpers translate, so each fact
stays declared once.
"""

from __future__ import annotations

from typing import Any

from kombu import Connection, Queue
from yarl import URL


def broker_user(broker_url: str) -> str:
    """The user name the broker URL logs in as (RabbitMQ checks it against a message's ``user_id``)."""
    return str(Connection(broker_url).userid or "guest")


def amqp_url(broker_url: str, *, heartbeat_s: int = 30) -> URL:
    """The aiormq URL for a kombu broker URL (``amqp://u:p@host:5672//`` is the ``/`` vhost)."""
    info = Connection(broker_url)
    secure = broker_url.startswith(("amqps://", "pyamqp+ssl://")) or bool(info.ssl)
    vhost = info.virtual_host or "/"
    return URL.build(
        scheme="amqps" if secure else "amqp",
        user=info.userid or "guest",
        password=info.password or "guest",
        host=info.hostname or "127.0.0.1",
        port=info.port or (5671 if secure else 5672),
        path="/" if vhost == "/" else "/" + vhost,  # aiormq reads the vhost from the decoded path
        query={"heartbeat": str(heartbeat_s)},
        encoded=False,
    )


def queue_declare_arguments(queue: Queue) -> dict[str, Any]:
    """The ``x-*`` arguments a queue is declared with."""
    return dict(getattr(queue, "queue_arguments", None) or {})
