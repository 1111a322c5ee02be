"""The broker check a worker makes before it says it is ready: connect, and declare the topology.

A misconfiguration that no retry can fix (credentials refused, a vhost that does not exist, a queue
declared earlier with other arguments) raises `ConfigError` with one line saying what to fix, so that
``hypatos-worker run`` exits non-zero at once instead of reporting "ready" and consuming nothing.
A broker that cannot be reached (yet) is retried with a growing interval, logging each attempt.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import amqp.exceptions
import structlog
from kombu import Connection

from worker.errors import ConfigError
from worker.queues import declare_topology
from worker.settings import WorkerSettings

log = structlog.get_logger(__name__)

#: Waits between attempts to reach the broker: 1 s, doubling, at most 30 s.
RETRY_INITIAL_S = 1.0
RETRY_MAX_S = 30.0


def _safe_url(connection: Connection) -> str:
    """The broker URL without its password."""
    return str(connection.as_uri(include_password=False))


def fatal_reason(exc: BaseException, connection: Connection) -> str | None:
    """One line saying what to fix, for a broker answer no retry can change; None when it may pass."""
    where = _safe_url(connection)
    text = str(exc)
    if isinstance(exc, amqp.exceptions.AccessRefused):
        if "vhost" in text:
            return (
                f"the broker at {where} refuses user {connection.userid!r} access to vhost "
                f"{connection.virtual_host!r}: grant it with `rabbitmqctl set_permissions`"
            )
        return (
            f"the broker at {where} refused the login of user {connection.userid!r}: check the user "
            "name and password in HYPATOS_BROKER_URL"
        )
    if isinstance(exc, amqp.exceptions.NotAllowed) or ("vhost" in text and "not found" in text):
        return (
            f"the broker at {where} has no vhost {connection.virtual_host!r}: create it "
            "(`rabbitmqctl add_vhost`) or fix the vhost in HYPATOS_BROKER_URL"
        )
    if isinstance(exc, amqp.exceptions.PreconditionFailed):
        return (
            f"the broker refused a declaration: {text.strip()}. A queue or exchange exists with other "
            "arguments than this worker's settings (HYPATOS_QUEUE_TYPE, HYPATOS_DELIVERY_LIMIT, "
            "queue names): delete it or make the settings match (see `hypatos-worker broker-definitions`)"
        )
    if isinstance(exc, amqp.exceptions.AccessRefused | amqp.exceptions.NotFound):
        return f"the broker at {where} refused: {text.strip()}"
    return None


def check_broker(settings: WorkerSettings, *, sleep: Callable[[float], None] = time.sleep) -> None:
    """Connect and declare the topology; retry while the broker is unreachable, `ConfigError` if fatal."""
    delay_s = RETRY_INITIAL_S
    while True:
        connection = Connection(settings.broker_url, connect_timeout=10)
        try:
            with connection:
                connection.connect()
                declare_topology(connection, settings)
            return
        except Exception as exc:  # kombu/py-amqp raise many types; each is sorted below
            reason = fatal_reason(exc, connection)
            if reason is not None:
                raise ConfigError(reason) from None
            log.warning(
                "broker_unreachable",
                broker=_safe_url(connection),
                error=type(exc).__name__,
                detail=str(exc)[:200],
                retry_in_s=delay_s,
            )
        sleep(delay_s)
        delay_s = min(delay_s * 2, RETRY_MAX_S)
