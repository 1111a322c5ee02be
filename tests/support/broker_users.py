"""Broker users for authorization tests, made with ``rabbitmqctl`` on the local node and removed after."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

from tests.support.ci import unavailable


@dataclass(frozen=True)
class BrokerUser:
    """A user of the local broker, and its URL."""

    name: str
    password: str

    def url(self, host: str = "127.0.0.1", port: int = 5672) -> str:
        return f"amqp://{self.name}:{self.password}@{host}:{port}//"


def _ctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "--quiet", *args], check=True, capture_output=True, timeout=60)


@contextlib.contextmanager
def broker_user(configure: str = ".*", write: str = ".*", read: str = ".*") -> Iterator[BrokerUser]:
    """A new user on vhost ``/`` with these permission patterns (RabbitMQ's configure/write/read)."""
    if shutil.which("rabbitmqctl") is None:
        unavailable("rabbitmqctl is not installed: authorization tests create broker users with it")
    user = BrokerUser(f"hyp-test-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex)
    try:
        _ctl("add_user", user.name, user.password)
    except subprocess.CalledProcessError as exc:
        unavailable(f"rabbitmqctl cannot add users here: {exc.stderr.decode(errors='replace').strip()}")
    try:
        _ctl("set_permissions", "-p", "/", user.name, configure, write, read)
        yield user
    finally:
        _ctl("delete_user", user.name)
