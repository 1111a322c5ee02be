"""A RabbitMQ restart in the middle of a batch: the workers reconnect and nothing is lost.

The test runs its own RabbitMQ node (tests/support/rabbit_node.py); the shared broker is never
restarted.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.amqp import AmqpTestClient
from tests.support.delivery import (
    Results,
    alive,
    assert_identical_duplicates,
    emulator_documents,
    get_document,
    process_file,
    publish_all,
    wait_for_fleet,
)
from tests.support.processes import WorkerFleet
from tests.support.rabbit_node import RabbitNode, rabbitmq_scripts

pytestmark = pytest.mark.integration


@pytest.fixture
def private_broker(tmp_path: Path) -> Iterator[RabbitNode]:
    """A RabbitMQ node of this test's own (own name, ports and data), stopped afterwards."""
    if rabbitmq_scripts() is None:
        pytest.skip("rabbitmq-server is not installed: this test needs a broker it may restart")
    node = RabbitNode(tmp_path / "rabbit")
    try:
        node.start()
    except (OSError, RuntimeError, TimeoutError) as exc:
        node.stop()
        pytest.skip(f"cannot start a private RabbitMQ node: {exc}")
    yield node
    node.stop()


def build_batch(
    emulator, prefix: str, count: int, documents: list[dict[str, Any]], project_id: str
) -> list[dict]:
    """Reads, and one creation in five (each with its own file)."""
    batch = []
    for index in range(count):
        request_id = f"{prefix}-{index}"
        if index % 5 == 0:
            file = emulator.seed_file(b"%PDF-1.4 restart test " + request_id.encode())
            batch.append(process_file(request_id, file["id"], project_id))
        else:
            batch.append(get_document(request_id, documents[index % len(documents)]["id"]))
    return batch


@pytest.mark.timeout(300)
def test_given_a_batch_in_progress_when_rabbitmq_restarts_then_the_workers_reconnect_and_nothing_is_lost(
    private_broker: RabbitNode,
    emulator,
    queue_names: dict[str, str],
    connections_file: Path,
    redis_env: dict[str, str],
    tmp_path: Path,
) -> None:
    # Given: two workers on the private broker, sharing Redis; API calls slow (1 s) so that
    # requests are in flight while the broker is down
    project = emulator.seed_project(name="Restart test")
    documents = emulator.seed_documents(20, project_id=project["id"])
    before = build_batch(emulator, "before", 300, documents, project["id"])
    after = build_batch(emulator, "after", 300, documents, project["id"])
    emulator.set_faults(latency_ms=1000)
    amqp = AmqpTestClient(private_broker.url)
    env = {
        **queue_names,
        **redis_env,
        "HYPATOS_BROKER_URL": private_broker.url,
        "HYPATOS_CONNECTIONS_FILE": str(connections_file),
        "HYPATOS_ALLOW_CUSTOM_ENDPOINTS": "1",
    }
    fleet = WorkerFleet(env, log_dir=tmp_path / "logs", amqp=amqp)
    try:
        fleet.start(2)

        # When: a first batch is published and, with a sixth of its results in (the rest in flight or
        # waiting), RabbitMQ is stopped and started again (same data, same port); then a second batch
        # is published
        publish_all(amqp, queue_names["HYPATOS_REQUEST_QUEUE"], before)
        results = Results(amqp, queue_names["HYPATOS_RESULT_QUEUE"])
        assert results.until(lambda r: len(r.by_id) >= 50, timeout_s=60), fleet.logs()[-3000:]
        amqp.close()
        private_broker.restart()
        amqp = fleet.amqp = results.amqp = AmqpTestClient(private_broker.url)
        wait_for_fleet(fleet, amqp, timeout_s=90)
        publish_all(amqp, queue_names["HYPATOS_REQUEST_QUEUE"], after)
        missing = results.until_all([r["id"] for r in before + after], timeout_s=120)

        # Then: both workers are still running, and every request of both batches got its result
        assert alive(fleet) == [0, 1], fleet.logs()[-3000:]
        assert not missing, (len(missing), sorted(missing)[:20], fleet.logs()[-3000:])
        failed = [results.first(key) for key in results.by_id if results.first(key)["status"] != "succeeded"]
        assert failed == []
        assert_identical_duplicates(results)
        # And: no creation ran twice
        creations = {r["id"] for r in before + after if r["operation"] == "processFileIntoDocument"}
        per_external_id = Counter(d["externalId"] for d in emulator_documents(emulator))
        assert {key: n for key, n in per_external_id.items() if key in creations and n != 1} == {}
    finally:
        fleet.stop_all()
        amqp.close()
