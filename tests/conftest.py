"""Shared fixtures: a real broker, the emulator, real worker processes and a plain AMQP client.

Integration tests need RabbitMQ.  When it is unreachable they skip with a reason, except under
``CI=true``, where they fail: CI must prove the real thing.

Every test that asks for the broker (``broker_url``) or Redis (``redis_url``), directly or through
another fixture, is marked ``integration`` (and ``redis`` for Redis) at collection, so
``pytest -m "not integration"`` runs exactly the tests that need nothing outside the test process.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.support.amqp import AmqpTestClient, broker_problem
from tests.support.ci import unavailable
from tests.support.processes import WorkerFleet

if TYPE_CHECKING:
    from tests.support.inprocess import InProcessWorker

#: Fixtures that reach a service outside the test process, and the markers their users get.
_SERVICE_MARKERS = {"broker_url": ("integration",), "redis_url": ("integration", "redis")}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark tests that need RabbitMQ or Redis by the fixtures they use (one rule, no marker to forget)."""
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        for fixture, markers in _SERVICE_MARKERS.items():
            if fixture in fixtures:
                for marker in markers:
                    item.add_marker(marker)


BROKER_URL = os.environ.get("HYPATOS_TEST_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//")
REDIS_URL = os.environ.get("HYPATOS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture(scope="session")
def broker_url() -> str:
    """The RabbitMQ URL, or a skip (a failure under CI) saying how to start one."""
    problem = broker_problem(BROKER_URL)
    if problem:
        message = (
            f"RabbitMQ is not reachable at {BROKER_URL} ({problem}); start one with "
            "`rabbitmq-server -detached` or `docker compose up -d rabbitmq`, "
            "or point HYPATOS_TEST_BROKER_URL at one"
        )
        unavailable(message)
    return BROKER_URL


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The Redis URL, or a skip (a failure under CI) saying how to start one."""
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        message = (
            f"Redis is not reachable at {REDIS_URL} ({exc}); start one with `redis-server --daemonize yes` "
            "or `docker compose up -d redis`, or point HYPATOS_TEST_REDIS_URL at one"
        )
        unavailable(message)
    return REDIS_URL


@pytest.fixture
def redis_env(redis_url: str) -> Iterator[dict[str, str]]:
    """Worker settings for a Redis-backed fleet, with a key prefix unique to the test (removed after)."""
    import redis

    prefix = f"hypatos-test-{uuid.uuid4().hex[:10]}:"
    yield {"HYPATOS_REDIS_URL": redis_url, "HYPATOS_REDIS_PREFIX": prefix}
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=f"{prefix}*"))
    if keys:
        client.delete(*keys)


@pytest.fixture
def queue_names() -> dict[str, str]:
    """Queue names unique to one test, so tests never see each other's messages."""
    prefix = f"test-{uuid.uuid4().hex[:10]}"
    return {
        "HYPATOS_REQUEST_QUEUE": f"{prefix}.requests",
        "HYPATOS_RESULT_QUEUE": f"{prefix}.results",
        "HYPATOS_DEAD_LETTER_QUEUE": f"{prefix}.dead",
        "HYPATOS_TASK_QUEUE": f"{prefix}.tasks",
    }


@pytest.fixture
def amqp(broker_url: str, queue_names: dict[str, str]) -> Iterator[AmqpTestClient]:
    """A plain AMQP (pika) client; deletes the test's queues afterwards."""
    client = AmqpTestClient(broker_url)
    yield client
    client.delete_queues(list(queue_names.values()))
    client.close()


@pytest.fixture
def emulator() -> Iterator[object]:
    """A Hypatos emulator on an ephemeral port, in this process."""
    from emulator.testing import EmulatorServer

    with EmulatorServer() as server:
        yield server


def write_connections(path: Path, emulator: object, *, name: str = "main", **overrides: str) -> Path:
    """A connections file with one connection to `emulator`."""
    fields = {
        "endpoint_url": emulator.base_url,  # type: ignore[attr-defined]
        "client_id": "test-client",
        "client_secret": "test-secret",
        **overrides,
    }
    lines = [f"[connections.{name}]"] + [f'{key} = "{value}"' for key, value in fields.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def connections_file(tmp_path: Path, emulator: object) -> Path:
    """A connections file naming the emulator as connection ``main``."""
    return write_connections(tmp_path / "connections.toml", emulator)


@pytest.fixture
def fleet(
    broker_url: str, queue_names: dict[str, str], connections_file: Path, tmp_path: Path, amqp: AmqpTestClient
) -> Iterator[WorkerFleet]:
    """Starts real ``hypatos-worker run`` processes; stops them (and shows their logs on failure)."""
    env = {
        **queue_names,
        "HYPATOS_BROKER_URL": broker_url,
        "HYPATOS_CONNECTIONS_FILE": str(connections_file),
        "HYPATOS_ALLOW_CUSTOM_ENDPOINTS": "1",
    }
    workers = WorkerFleet(env, log_dir=tmp_path / "logs", amqp=amqp)
    yield workers
    workers.stop_all()


@pytest.fixture
def in_process(tmp_path: Path, emulator: object) -> Iterator[Callable[..., InProcessWorker]]:
    """Builds the request path in this process (`tests.support.inprocess`), no broker needed.

    Call it with worker settings (``max_items=5``...) and, optionally, ``connections`` (name ->
    fields; default: connection ``main`` to the emulator); every worker built is closed afterwards.
    """
    from tests.support.inprocess import InProcessWorker, emulator_connection, write_connections

    built: list[InProcessWorker] = []

    def build(connections: dict[str, dict[str, Any]] | None = None, **settings: Any) -> InProcessWorker:
        path = tmp_path / f"connections-{len(built)}.toml"
        write_connections(path, connections or {"main": emulator_connection(emulator)})
        worker = InProcessWorker(path, **settings)
        built.append(worker)
        return worker

    yield build
    for worker in built:
        worker.close()
