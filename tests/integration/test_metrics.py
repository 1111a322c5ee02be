"""Each worker process serves Prometheus metrics when HYPATOS_METRICS_PORT is set."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.amqp import AmqpTestClient
from tests.support.delivery import wait_until
from tests.support.metrics import free_port, scrape
from tests.support.processes import WorkerFleet

pytestmark = pytest.mark.integration


def test_given_a_metrics_port_then_requests_tokens_and_failures_are_counted(
    fleet: WorkerFleet, amqp: AmqpTestClient, emulator: Any, queue_names: dict[str, str]
) -> None:
    port = free_port()
    document = emulator.seed_documents(1)[0]
    fleet.start(1, HYPATOS_METRICS_PORT=str(port))
    queue = queue_names["HYPATOS_REQUEST_QUEUE"]
    for index in range(3):
        amqp.publish(
            queue,
            {
                "id": f"m{index}",
                "connection": "main",
                "operation": "documentsGetById",
                "params": {"id": document["id"]},
            },
        )
    amqp.publish(queue, {"id": "bad", "connection": "main", "operation": "noSuchThing"})
    amqp.publish(queue, b"not json", raw=True)
    assert len(amqp.collect(queue_names["HYPATOS_RESULT_QUEUE"], 4, timeout_s=30)) == 4
    text = scrape(port)
    assert 'hypatos_requests_total{error_code="",operation="documentsGetById",status="succeeded"} 3.0' in text
    assert (
        'hypatos_requests_total{error_code="unknown_operation",operation="unknown",status="failed"} 1.0'
        in text
    )
    assert 'hypatos_token_requests_total{connection="main",outcome="ok"} 1.0' in text
    assert 'hypatos_api_attempts_total{operation="documentsGetById"} 3.0' in text
    dead = 'hypatos_dead_lettered_total{reason="undecodable"} 1.0'
    text = wait_until(lambda: next((t for t in [scrape(port)] if dead in t), None), 30, what="dead letter")
    assert "hypatos_requests_in_flight 0.0" in text
    assert "hypatos_consumer_up 1.0" in text


def test_given_task_events_on_then_each_request_is_reported_as_a_celery_task(
    fleet: WorkerFleet, amqp: AmqpTestClient, emulator: Any, queue_names: dict[str, str]
) -> None:
    # Given: a worker sending task events, and a monitor listening to Celery's event exchange
    document = emulator.seed_documents(1)[0]
    fleet.start(1, HYPATOS_TASK_EVENTS="1")
    monitor = amqp.channel.queue_declare(queue="", exclusive=True).method.queue
    amqp.channel.queue_bind(queue=monitor, exchange="celeryev", routing_key="task.#")
    # When: one request succeeds and one fails
    queue = queue_names["HYPATOS_REQUEST_QUEUE"]
    amqp.publish(
        queue,
        {"id": "ok", "connection": "main", "operation": "documentsGetById", "params": {"id": document["id"]}},
    )
    amqp.publish(queue, {"id": "bad", "connection": "main", "operation": "noSuchThing"})
    assert len(amqp.collect(queue_names["HYPATOS_RESULT_QUEUE"], 2, timeout_s=30)) == 2
    events = [event for _, event in amqp.collect(monitor, 6, timeout_s=30)]
    # Then: each was received, started and ended, as the task hypatos.request
    by_task: dict[str, list[str]] = {}
    for event in events:
        by_task.setdefault(event["uuid"], []).append(event["type"])
    assert sorted(by_task.values()) == [
        ["task-received", "task-started", "task-failed"],
        ["task-received", "task-started", "task-succeeded"],
    ]
    received = [e for e in events if e["type"] == "task-received"]
    assert {e["name"] for e in received} == {"hypatos.request"}
    assert all(e["hostname"].startswith("hypatos-") for e in events)
