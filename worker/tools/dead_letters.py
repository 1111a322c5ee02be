"""Inspect, replay and purge the dead-letter queue (``hypatos-worker dead-letters``).

Messages arrive there three ways, each with its reason:

- set aside by a worker because no result could be addressed (not UTF-8 JSON, too large, no usable
  ``id``): header ``x-hypatos-dead-reason``, source the request queue;
- a result whose ``reply_to`` queue did not exist: the same header, source that queue, and the result
  headers (``x-hypatos-request-id``, ``x-hypatos-status``); it is a result, never replayed;
- a request RabbitMQ dead-lettered after ``HYPATOS_DELIVERY_LIMIT`` deliveries: header ``x-death``.

Replay sends a dead request back to the request queue exactly as it was (same bytes, ``reply_to``
and ``correlation_id``).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from kombu import Connection
from kombu.message import Message

from worker import constants
from worker.messages import MAX_ID_LENGTH
from worker.settings import WorkerSettings
from worker.tools.publishing import ConfirmedPublisher


@dataclass(frozen=True)
class DeadLetter:
    """One message of the dead-letter queue, as an operator sees it."""

    reason: str
    source_queue: str | None
    correlation_id: str | None
    request_id: str | None
    body: str

    def to_dict(self) -> dict[str, Any]:
        """For ``--json``."""
        return self.__dict__.copy()


def _reason(headers: dict[str, Any]) -> tuple[str, str | None]:
    if constants.DEAD_REASON_HEADER in headers:
        return str(headers[constants.DEAD_REASON_HEADER]), headers.get(constants.DEAD_SOURCE_HEADER)
    deaths = headers.get("x-death") or []
    if deaths:
        death = deaths[0]
        return f"{death.get('reason')} (RabbitMQ, {death.get('count', 1)}x)", death.get("queue")
    return "unknown", None


@dataclass(frozen=True)
class Replayable:
    """A request recovered from a dead message, with where its result should go."""

    request: dict[str, Any]
    reply_to: str | None
    correlation_id: str | None
    #: The message body as it was published.
    body: bytes


def _unpack(message: Message) -> tuple[Any, str | None, str | None]:
    """(request candidate, reply_to, correlation_id) of a dead message; no candidate for a dead result."""
    properties, headers = message.properties, message.headers or {}
    reply_to, correlation_id = properties.get("reply_to"), properties.get("correlation_id")
    if constants.STATUS_HEADER in headers:
        return None, reply_to, correlation_id
    try:
        return json.loads(message.body), reply_to, correlation_id
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None, reply_to, correlation_id


def replayable(message: Message) -> Replayable | None:
    """The request inside a dead message, if it has one with a usable ``id``."""
    request, reply_to, correlation_id = _unpack(message)
    if not isinstance(request, dict):
        return None
    request_id = request.get("id")
    if not isinstance(request_id, str) or not 1 <= len(request_id) <= MAX_ID_LENGTH:
        return None
    return Replayable(request, reply_to, correlation_id, _raw_body(message))


def describe(message: Message) -> DeadLetter:
    """What an operator needs to know about `message`."""
    headers = dict(message.headers or {})
    reason, source = _reason(headers)
    found = replayable(message)
    _, _, correlation_id = _unpack(message)
    body = message.body.decode("utf-8", "replace") if isinstance(message.body, bytes) else str(message.body)
    return DeadLetter(
        reason=reason,
        source_queue=source,
        correlation_id=correlation_id,
        request_id=str(found.request["id"]) if found else None,
        body=body[:2000],
    )


@contextlib.contextmanager
def _taken(settings: WorkerSettings, limit: int) -> Iterator[tuple[Connection, list[Message]]]:
    """Up to `limit` dead messages, unacknowledged: whatever the caller does not ack goes back."""
    with Connection(settings.broker_url, transport_options={"confirm_publish": True}) as connection:
        channel = connection.channel()
        messages = []
        while len(messages) < limit:
            raw = channel.basic_get(settings.dead_letter_queue, no_ack=False)
            if raw is None:
                break
            messages.append(channel.message_to_python(raw))
        try:
            yield connection, messages
        finally:
            channel.close()


def list_dead(settings: WorkerSettings, limit: int) -> list[DeadLetter]:
    """Look at up to `limit` messages without removing them."""
    with _taken(settings, limit) as (_, messages):
        return [describe(message) for message in messages]


def _raw_body(message: Message) -> bytes:
    body = message.body
    return body if isinstance(body, bytes) else str(body).encode("utf-8")


def _republish(publisher: ConfirmedPublisher, settings: WorkerSettings, found: Replayable) -> None:
    publisher.publish(
        found.body,
        routing_key=settings.request_queue,
        content_type="application/json",
        content_encoding="binary",
        correlation_id=found.correlation_id,
        reply_to=found.reply_to,
    )


def replay_dead(settings: WorkerSettings, limit: int, request_id: str | None = None) -> tuple[int, int]:
    """Move replayable messages back to the request queue; returns (replayed, left in place).

    A message is acknowledged only once the request queue took its copy (confirmed, mandatory): with
    no request queue, `NotRouted` is raised and the messages not yet replayed stay where they were.
    """
    replayed = kept = 0
    with _taken(settings, limit) as (connection, messages):
        publisher = ConfirmedPublisher(connection)
        for message in messages:
            found = replayable(message)
            if found is None or (request_id is not None and found.request.get("id") != request_id):
                kept += 1
                continue
            _republish(publisher, settings, found)
            message.ack()
            replayed += 1
    return replayed, kept


def purge_dead(settings: WorkerSettings) -> int:
    """Delete every message of the dead-letter queue; returns how many."""
    with Connection(settings.broker_url) as connection:
        return int(connection.channel().queue_purge(settings.dead_letter_queue) or 0)
