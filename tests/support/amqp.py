"""A plain AMQP 0-9-1 client for tests (pika, not Celery), as any upstream system would use."""

from __future__ import annotations

import contextlib
import json
import socket
import time
import uuid
from typing import Any
from urllib.parse import urlsplit

import pika


def broker_problem(url: str) -> str | None:
    """Why the broker at `url` cannot be used, or None when it answers."""
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 5672), timeout=2):
            return None
    except OSError as exc:
        return str(exc)


def pika_parameters(url: str) -> pika.URLParameters:
    """pika's parameters for a kombu-style URL (``amqp://u:p@host:port//`` means the ``/`` vhost)."""
    parts = urlsplit(url)
    vhost = parts.path[1:] if parts.path not in ("", "/", "//") else "%2F"
    return pika.URLParameters(f"amqp://{parts.netloc}/{vhost}")


class AmqpTestClient:
    """Publishes requests and collects results the way a non-Python caller would."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.connection = pika.BlockingConnection(pika_parameters(url))
        self.channel = self.connection.channel()
        self.channel.confirm_delivery()

    def publish(
        self,
        queue: str,
        body: Any,
        *,
        correlation_id: str | None = None,
        reply_to: str | None = None,
        raw: bool = False,
        user_id: str | None = None,
        headers: dict[str, Any] | None = None,
        exchange: str = "",
    ) -> None:
        """Publish `body` (JSON-encoded unless `raw`) to `queue` through the default exchange, or to
        `exchange` (whose bindings then decide)."""
        payload = body if raw else json.dumps(body).encode()
        self.channel.basic_publish(
            exchange=exchange,
            routing_key=queue if not exchange else "",
            body=payload,
            properties=pika.BasicProperties(
                content_type="application/json",
                delivery_mode=2,
                correlation_id=correlation_id,
                reply_to=reply_to,
                user_id=user_id,
                headers=headers,
            ),
            mandatory=True,
        )

    def declare_reply_queue(self) -> str:
        """A private, exclusive reply queue, as an RPC-style caller would declare."""
        name = f"reply-{uuid.uuid4().hex[:8]}"
        self.channel.queue_declare(queue=name, exclusive=True, auto_delete=True)
        return name

    def collect(self, queue: str, count: int, timeout_s: float = 60.0) -> list[tuple[Any, Any]]:
        """Take `count` messages from `queue` (or fewer at the timeout): (properties, decoded body) pairs."""
        received: list[tuple[Any, Any]] = []
        deadline = time.monotonic() + timeout_s
        while len(received) < count and time.monotonic() < deadline:
            method, properties, body = self.channel.basic_get(queue=queue, auto_ack=True)
            if method is None:
                self.connection.sleep(0.05)
                continue
            try:
                decoded = json.loads(body)
            except ValueError:
                decoded = body
            received.append((properties, decoded))
        return received

    def wait_for_consumers(self, queue: str, count: int, timeout_s: float = 60.0) -> None:
        """Block until `queue` exists and has at least `count` consumers."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                channel = self.connection.channel()
                ok = channel.queue_declare(queue=queue, passive=True)
                channel.close()
                if ok.method.consumer_count >= count:
                    return
            except pika.exceptions.ChannelClosedByBroker:
                pass
            self.connection.sleep(0.2)
        raise TimeoutError(f"queue {queue} did not get {count} consumers in {timeout_s}s")

    def message_count(self, queue: str) -> int:
        """Messages ready in `queue`."""
        channel = self.connection.channel()
        try:
            return int(channel.queue_declare(queue=queue, passive=True).method.message_count)
        finally:
            channel.close()

    def delete_queues(self, names: list[str]) -> None:
        """Delete the test's queues (missing ones are fine)."""
        for name in names:
            try:
                channel = self.connection.channel()
                channel.queue_delete(queue=name)
                channel.close()
            except (pika.exceptions.AMQPError, OSError):
                pass

    def close(self) -> None:
        """Close the connection."""
        with contextlib.suppress(pika.exceptions.AMQPError, OSError):
            self.connection.close()
