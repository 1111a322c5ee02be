"""Connecting the tools to the broker, with one line for each way it fails and never the password.

Two failures are told apart because the demo treats them differently: no broker answering at the
address (`BrokerUnreachable`: the demo runs without one) and a broker that answers but refuses
(`BrokerRefused`: wrong credentials, a missing vhost; nothing runs until the URL is fixed).
"""

from __future__ import annotations

from typing import Any

from kombu import Connection

from worker.preflight import fatal_reason


class BrokerError(Exception):
    """Raised when the tools cannot use the broker; the text is one line, without the password."""


class BrokerUnreachable(BrokerError):
    """Raised when nothing answers AMQP at the broker URL's address."""


class BrokerRefused(BrokerError):
    """Raised when the broker answers but refuses the connection (credentials, vhost)."""


def safe_broker_url(connection: Connection) -> str:
    """The broker URL without its password, for messages people read."""
    return str(connection.as_uri(include_password=False))


def connect(broker_url: str, *, timeout_s: float = 10.0, **transport_options: Any) -> Connection:
    """An open connection to `broker_url`, or a `BrokerError` saying in one line why there is none."""
    connection = Connection(broker_url, connect_timeout=timeout_s, transport_options=transport_options)
    try:
        connection.connect()
    except OSError as exc:  # refused, unknown host, timed out
        connection.release()
        raise BrokerUnreachable(
            f"no broker answered at {safe_broker_url(connection)} ({exc.strerror or exc})"
        ) from None
    except Exception as exc:  # py-amqp's answers: sorted by the workers' own start-up check
        connection.release()
        reason = fatal_reason(exc, connection) or f"the broker at {safe_broker_url(connection)}: {exc}"
        raise BrokerRefused(reason) from None
    return connection
