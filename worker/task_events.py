"""Celery task events for the requests the consumer runs, so that Flower shows each request as a task.

Requests do not run as Celery tasks (see docs/ARCHITECTURE.md), so Celery sends no task events for
them.  When the worker's task events are on (``hypatos-worker run`` with ``HYPATOS_TASK_EVENTS=1``,
or switched on at run time by a monitor through Celery's ``enable_events`` remote control, as Flower
does), each delivery is reported as a task named ``hypatos.request``: ``task-received`` and
``task-started`` when it arrives, ``task-succeeded`` or ``task-failed`` (with the error code) when it
is answered.  Events are sent on their own channel, unconfirmed and transient, like Celery's own: a
lost event never costs a request anything.  When they are off, nothing is sent and nothing is built.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from typing import Any

import aiormq
import orjson
import structlog
from celery.events.event import Event
from celery.utils.time import utcoffset
from pamqp.commands import Basic

log = structlog.get_logger(__name__)

#: Celery's event exchange (topic, durable, as Celery declares it).
EVENT_EXCHANGE = "celeryev"
#: The task name requests are reported under.
TASK_NAME = "hypatos.request"

#: Whether task events are wanted right now (asked before every event).
EventsWanted = Callable[[], bool]


class TaskEvents:
    """Sends task events for one worker process; see the module docstring."""

    def __init__(self, wanted: EventsWanted, hostname: str, clock: Callable[[], int]) -> None:
        self._wanted = wanted
        self._hostname = hostname
        self._clock = clock
        self._channel: aiormq.abc.AbstractChannel | None = None

    async def attach(self, connection: aiormq.abc.AbstractConnection) -> None:
        """Open the events channel on a (new) broker connection."""
        self._channel = await connection.channel(publisher_confirms=False)
        await self._channel.exchange_declare(EVENT_EXCHANGE, exchange_type="topic", durable=True)

    @property
    def on(self) -> bool:
        """Whether events are sent now."""
        return self._channel is not None and self._wanted()

    async def send(self, event_type: str, **fields: Any) -> None:
        """Send one event, if events are on; a failure is logged, never raised."""
        channel = self._channel
        if channel is None or channel.is_closed or not self._wanted():
            return
        event = Event(
            event_type,
            hostname=self._hostname,
            utcoffset=utcoffset(),
            pid=os.getpid(),
            clock=self._clock(),
            **fields,
        )
        properties = Basic.Properties(
            content_type="application/json", content_encoding="utf-8", delivery_mode=1
        )
        with contextlib.suppress(
            aiormq.exceptions.AMQPError, aiormq.exceptions.ChannelInvalidStateError, OSError
        ):
            await channel.basic_publish(
                orjson.dumps(event, default=str),
                exchange=EVENT_EXCHANGE,
                routing_key=event_type.replace("-", "."),
                properties=properties,
            )
