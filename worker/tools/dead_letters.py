"""Inspect, replay and purge the dead-letter queue (``hypatos-worker dead-letters``).

Messages arrive there two ways: set aside by the bridge because no result could be addressed
(header ``x-hypatos-dead-reason``), or dead-lettered by RabbitMQ after too many deliveries (header
``x-death``).  The latter may be plain requests from the request queue or Celery task messages from
the task queue; replay turns both back into a plain request on the request queue.
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


def _unpack(message: Message) -> tuple[Any, str | None, str | None]:
    """(request candidate, reply_to, correlation_id) of a plain request or of a Celery task message."""
    properties = message.properties
    try:
        document = json.loads(message.body)
    except (ValueError, UnicodeDecodeError):
        return None, properties.get("reply_to"), properties.get("correlation_id")
    if isinstance(document, list) and len(document) == 3 and isinstance(document[1], dict):
        kwargs = document[1]  # Celery protocol 2: [args, kwargs, embed]
        return kwargs.get("request"), kwargs.get("reply_to"), kwargs.get("correlation_id")
    return document, properties.get("reply_to"), properties.get("correlation_id")


def replayable(message: Message) -> Replayable | None:
    """The request inside a dead message, if it has one with a usable ``id``."""
    request, reply_to, correlation_id = _unpack(message)
    if not isinstance(request, dict):
        return None
    request_id = request.get("id")
    if not isinstance(request_id, str) or not 1 <= len(request_id) <= MAX_ID_LENGTH:
        return None
    return Replayable(request, reply_to, correlation_id)


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


def _republish(connection: Connection, settings: WorkerSettings, found: Replayable) -> None:
    connection.Producer().publish(
        json.dumps(found.request).encode(),
        exchange="",
        routing_key=settings.request_queue,
        content_type="application/json",
        content_encoding="utf-8",
        delivery_mode=2,
        correlation_id=found.correlation_id,
        reply_to=found.reply_to,
        retry=True,
    )


def replay_dead(settings: WorkerSettings, limit: int, request_id: str | None = None) -> tuple[int, int]:
    """Move replayable messages back to the request queue; returns (replayed, left in place)."""
    replayed = kept = 0
    with _taken(settings, limit) as (connection, messages):
        for message in messages:
            found = replayable(message)
            if found is None or (request_id is not None and found.request.get("id") != request_id):
                kept += 1
                continue
            _republish(connection, settings, found)
            message.ack()
            replayed += 1
    return replayed, kept


def purge_dead(settings: WorkerSettings) -> int:
    """Delete every message of the dead-letter queue; returns how many."""
    with Connection(settings.broker_url) as connection:
        return int(connection.channel().queue_purge(settings.dead_letter_queue) or 0)
