"""The operator tools that need no RabbitMQ: the CLI's offline commands, Test Connection against the
emulator, and the dead-letter and queue clients on kombu's in-memory transport.

The same tools against RabbitMQ (and ``run``/``demo`` with real worker processes) are integration tests.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from click.testing import CliRunner
from kombu import Connection, Producer, Queue

from tests.support.inprocess import emulator_connection, write_connections
from worker import constants
from worker.schemas import rendered
from worker.settings import WorkerSettings
from worker.tools import demo
from worker.tools.cli import main
from worker.tools.dead_letters import list_dead, purge_dead, replay_dead

MEMORY = "memory://"


@pytest.fixture(autouse=True)
def _logging_left_as_found() -> Iterator[None]:
    """Commands set up logging on the runner's stderr, which closes after them: put the setup back."""
    root = logging.getLogger()
    handlers, level, config = root.handlers[:], root.level, structlog.get_config()
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.configure(**config)


def invoke(*args: str, env: dict[str, str | None] | None = None) -> Any:
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


# ---- the CLI's offline commands -----------------------------------------------------------------


def test_operations_lists_the_catalog_as_text_and_as_json() -> None:
    text, as_json = invoke("operations"), invoke("operations", "--json")
    assert text.exit_code == 0 and "documentsGetById" in text.output
    assert any(entry["name"] == "uploadFile" for entry in json.loads(as_json.output))


def test_schemas_writes_the_files_that_are_committed(tmp_path: Path) -> None:
    outcome = invoke("schemas", "--out", str(tmp_path))
    assert outcome.exit_code == 0
    assert {p.name: p.read_text() for p in tmp_path.iterdir()} == rendered()


def test_broker_definitions_follow_the_settings() -> None:
    outcome = invoke("broker-definitions", env={"HYPATOS_REQUEST_QUEUE": "erp.requests"})
    names = {queue["name"] for queue in json.loads(outcome.output)["queues"]}
    assert outcome.exit_code == 0 and "erp.requests" in names


def test_given_an_invalid_setting_then_the_cli_names_the_variable() -> None:
    outcome = invoke("broker-definitions", env={"HYPATOS_CONCURRENCY": "0"})
    assert outcome.exit_code == 1 and "HYPATOS_CONCURRENCY" in outcome.output


def test_given_no_connections_file_then_run_says_what_to_set() -> None:
    outcome = invoke("run", env={"HYPATOS_CONNECTIONS_FILE": None})
    assert outcome.exit_code == 1 and "HYPATOS_CONNECTIONS_FILE is not set" in outcome.output


# ---- Test Connection ----------------------------------------------------------------------------


@pytest.fixture
def connections_env(tmp_path: Path, emulator: Any) -> dict[str, str]:
    path = write_connections(
        tmp_path / "connections.toml",
        {
            "main": emulator_connection(emulator),
            "wrong": emulator_connection(emulator, client_secret="not-the-secret"),
        },
    )
    return {"HYPATOS_CONNECTIONS_FILE": str(path), "HYPATOS_ALLOW_CUSTOM_ENDPOINTS": "1"}


def test_test_connection_reports_a_usable_connection_with_exit_code_0(
    connections_env: dict[str, str],
) -> None:
    outcome = invoke("test-connection", "main", env=connections_env)
    assert outcome.exit_code == 0 and "credentials_accepted" in outcome.output


def test_test_connection_all_exits_1_when_one_connection_is_unusable(connections_env: dict[str, str]) -> None:
    outcome = invoke("test-connection", "--all", "--json", env=connections_env)
    reports = {report["connection"]: report for report in json.loads(outcome.output)}
    assert outcome.exit_code == 1 and reports["main"]["usable"] and not reports["wrong"]["usable"]


def test_test_connection_needs_a_name_and_a_known_one(connections_env: dict[str, str]) -> None:
    nameless = CliRunner().invoke(main, ["test-connection"], env=connections_env)
    unknown = invoke("test-connection", "initech", env=connections_env)
    assert nameless.exit_code == 2 and "name at least one connection" in nameless.output
    assert unknown.exit_code == 1 and "unknown connection 'initech'" in unknown.output


# ---- dead letters and the queue client, on the in-memory transport ------------------------------


@pytest.fixture
def memory_settings() -> Iterator[WorkerSettings]:
    """Settings naming queues of kombu's in-memory transport, declared and unique to the test."""
    prefix = f"test-{uuid.uuid4().hex[:10]}"
    settings = WorkerSettings(
        broker_url=MEMORY,
        request_queue=f"{prefix}.requests",
        result_queue=f"{prefix}.results",
        dead_letter_queue=f"{prefix}.dead",
    )
    with Connection(MEMORY) as connection:
        channel = connection.channel()
        for name in (settings.request_queue, settings.result_queue, settings.dead_letter_queue):
            Queue(name).bind(channel).declare()
    yield settings


def publish(queue: str, body: bytes, **properties: Any) -> None:
    with Connection(MEMORY) as connection:
        Producer(connection.channel()).publish(body, exchange="", routing_key=queue, **properties)


def take(queue: str) -> list[Any]:
    with Connection(MEMORY) as connection:
        simple = connection.SimpleQueue(queue, no_ack=True)
        messages = []
        while True:
            try:
                messages.append(simple.get(timeout=0.01))
            except simple.Empty:
                return messages


def dead_letters(settings: WorkerSettings) -> None:
    """A set-aside request, a result nobody could take, and a request RabbitMQ gave up on."""
    queue = settings.dead_letter_queue
    set_aside = {constants.DEAD_REASON_HEADER: "too large", constants.DEAD_SOURCE_HEADER: "req"}
    unroutable = {constants.DEAD_REASON_HEADER: "no queue", constants.STATUS_HEADER: "failed"}
    request = b'{"id": "r1", "connection": "main"}'
    publish(queue, request, correlation_id="c1", reply_to="erp.replies", headers=set_aside)
    publish(queue, b'{"id": "r2", "status": "failed"}', headers=unroutable)
    publish(
        queue, b"\xff\xfe", headers={"x-death": [{"reason": "delivery_limit", "count": 6, "queue": "req"}]}
    )


def test_dead_letters_are_described_with_their_reason_source_and_request_id(
    memory_settings: WorkerSettings,
) -> None:
    dead_letters(memory_settings)
    found = list_dead(memory_settings, limit=10)
    assert [(d.reason, d.source_queue, d.request_id) for d in found] == [
        ("too large", "req", "r1"),
        ("no queue", None, None),
        ("delivery_limit (RabbitMQ, 6x)", "req", None),
    ]
    assert found[0].correlation_id == "c1" and found[0].to_dict()["body"].startswith('{"id": "r1"')


def test_replay_sends_back_only_dead_requests_exactly_as_they_were(memory_settings: WorkerSettings) -> None:
    dead_letters(memory_settings)
    assert replay_dead(memory_settings, limit=10) == (1, 2)
    [replayed] = take(memory_settings.request_queue)
    assert replayed.body == b'{"id": "r1", "connection": "main"}'
    assert replayed.properties["reply_to"] == "erp.replies" and replayed.properties["correlation_id"] == "c1"


def test_replay_of_one_id_leaves_the_others(memory_settings: WorkerSettings) -> None:
    dead_letters(memory_settings)
    assert replay_dead(memory_settings, limit=10, request_id="r9") == (0, 3)


def test_purge_deletes_every_dead_message(memory_settings: WorkerSettings) -> None:
    dead_letters(memory_settings)
    assert purge_dead(memory_settings) == 3


# ---- the demo's pieces --------------------------------------------------------------------------


def test_the_demo_sends_a_list_one_get_per_document_and_one_invalid_request() -> None:
    requests = demo._sample_requests(["d1", "d2"])
    assert [r["id"] for r in requests] == ["demo-list", "demo-get-0", "demo-get-1", "demo-bad"]
