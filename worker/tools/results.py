"""``hypatos-worker results``: print results as they arrive in a result queue, for any producer.

Each message is printed, then acknowledged (so a result is never lost to an interrupted command; it
may, rarely, be printed twice).  Without ``--follow`` the command takes what the queue holds and
stops; with it, it waits for more until interrupted (SIGINT or SIGTERM, which end it after the
message being printed).  Results arrive as they complete, in no particular order: match them to
requests by ``id`` or ``correlation_id``.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import amqp.exceptions
import click
from kombu import Connection, Consumer, Queue
from kombu.message import Message

from worker.tools.broker import BrokerError, connect, safe_broker_url

#: Longest a follower waits on the socket before it looks whether it was asked to stop.
POLL_S = 0.5
#: Results a follower takes from the broker ahead of printing them.
PREFETCH = 50


def summary(result: dict[str, Any]) -> str:
    """What a result says, in a few words."""
    data, error = result.get("data"), result.get("error")
    if isinstance(error, dict):
        return f"{error.get('code')}: {error.get('message')}"
    if isinstance(data, dict) and "totalCount" in data and isinstance(data.get("data"), list):
        return f"{len(data['data'])} of {data['totalCount']} items"
    if isinstance(data, dict) and "state" in data:
        return f"document {data.get('id')} state={data['state']} title={data.get('title')!r}"
    return json.dumps(data)[:100]


def format_result(result: Any, *, as_json: bool) -> str:
    """One line per result: its whole JSON, or for people id, operation, status, HTTP status, summary."""
    if as_json:
        return json.dumps(result, ensure_ascii=False)
    if not isinstance(result, dict):
        return f"(not a result: {json.dumps(result)[:100]})"
    status = f"HTTP {result['http_status']}" if result.get("http_status") else "no call"
    return (
        f"{result.get('id')!s:<12} {result.get('operation')!s:<18} {result.get('status')!s:<9} "
        f"{status:<9} {summary(result)}"
    )


def decode(body: bytes) -> Any:
    """A result message's JSON, or its text when it is not JSON (printed as it is)."""
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        return body.decode("utf-8", "replace")


class Stop:
    """Set by SIGINT/SIGTERM while following: the loop ends after the message being handled."""

    def __init__(self) -> None:
        self.requested = False

    def __call__(self, _signum: int, _frame: object) -> None:
        self.requested = True


@contextmanager
def _stop_on_signals() -> Iterator[Stop]:
    stop = Stop()
    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _check_queue(connection: Connection, queue: str) -> None:
    channel = connection.channel()
    try:
        channel.queue_declare(queue=queue, passive=True)
    except amqp.exceptions.NotFound:
        raise click.ClickException(
            f"the broker at {safe_broker_url(connection)} has no queue named {queue!r}"
        ) from None
    finally:
        if channel.is_open:
            channel.close()


def drain(connection: Connection, queue: str, show: Callable[[Any], None]) -> int:
    """Print and acknowledge what `queue` holds now; returns how many results."""
    channel = connection.channel()
    count = 0
    try:
        while (raw := channel.basic_get(queue, no_ack=False)) is not None:
            show(decode(raw.body))
            channel.basic_ack(raw.delivery_tag)
            count += 1
    finally:
        channel.close()
    return count


def follow(connection: Connection, queue: str, show: Callable[[Any], None]) -> int:
    """Print and acknowledge results as they arrive until SIGINT/SIGTERM; returns how many."""
    count = 0

    def on_message(message: Message) -> None:
        nonlocal count
        show(decode(message.body))
        message.ack()
        count += 1

    channel = connection.channel()
    with (
        _stop_on_signals() as stop,
        Consumer(
            channel, queues=[Queue(queue, no_declare=True)], on_message=on_message, prefetch_count=PREFETCH
        ),
    ):
        while not stop.requested:
            try:
                connection.drain_events(timeout=POLL_S)
            except TimeoutError:  # socket.timeout: nothing arrived; look at `stop` again
                continue
    return count


def read_results(broker_url: str, queue: str, *, follow_queue: bool, as_json: bool) -> int:
    """The ``results`` command: print (and acknowledge) the results in `queue`; returns how many."""

    def show(result: Any) -> None:
        click.echo(format_result(result, as_json=as_json))

    try:
        connection = connect(broker_url)
    except BrokerError as exc:
        raise click.ClickException(str(exc)) from None
    with connection:
        _check_queue(connection, queue)
        return (follow if follow_queue else drain)(connection, queue, show)
