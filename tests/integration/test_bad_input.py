"""Bad input gets a clear failed result, or the dead-letter queue, and the worker keeps serving."""

from __future__ import annotations

import pytest

from tests.support.amqp import AmqpTestClient
from tests.support.processes import WorkerFleet

pytestmark = pytest.mark.integration

BAD_REQUESTS = [
    # (request, expected error code, field named in details or None)
    ({"id": "b1", "operation": "documentsGetById", "params": {"id": "x"}}, "invalid_request", "connection"),
    (
        {"id": "b2", "connection": "nope", "operation": "documentsGetById", "params": {"id": "x"}},
        "unknown_connection",
        None,
    ),
    ({"id": "b3", "connection": "main", "operation": "documentsFrobnicate"}, "unknown_operation", None),
    ({"id": "b4", "connection": "main", "operation": "documentsGetById"}, "validation_error", "params.id"),
    (
        {"id": "b5", "connection": "main", "operation": "documentsList", "params": {"limit": 500}},
        "validation_error",
        "params.limit",
    ),
    (
        {"id": "b6", "connection": "main", "operation": "documentsList", "params": {"state": ["nope"]}},
        "validation_error",
        "params.state",
    ),
    (
        {"id": "b7", "connection": "main", "operation": "documentsGetById", "params": "x"},
        "invalid_request",
        "params",
    ),
]


def test_given_bad_requests_with_an_id_then_each_gets_a_failed_result_with_a_clear_code(
    fleet: WorkerFleet, amqp: AmqpTestClient, emulator, queue_names: dict[str, str]
) -> None:
    fleet.start(1)
    for request, _, _ in BAD_REQUESTS:
        amqp.publish(queue_names["HYPATOS_REQUEST_QUEUE"], request, correlation_id=request["id"])
    results = {r["id"]: r for _, r in amqp.collect(queue_names["HYPATOS_RESULT_QUEUE"], len(BAD_REQUESTS))}
    for request, code, field in BAD_REQUESTS:
        result = results[request["id"]]
        assert result["status"] == "failed"
        assert result["error"]["code"] == code, result
        assert result["error"]["retryable"] is False
        assert result["http_status"] is None and result["attempts"] == 0
        if field:
            assert field in [d["field"] for d in result["error"]["details"]], result
    # No Hypatos call was made for any of them.
    assert emulator.counters()["operations"] == {}


def test_given_messages_without_a_usable_id_then_they_are_dead_lettered_and_the_worker_goes_on(
    fleet: WorkerFleet, amqp: AmqpTestClient, emulator, queue_names: dict[str, str]
) -> None:
    fleet.start(1)
    requests_queue = queue_names["HYPATOS_REQUEST_QUEUE"]
    amqp.publish(requests_queue, b"{not json", raw=True, correlation_id="c1")
    amqp.publish(requests_queue, b"\xff\xfe\x00", raw=True, correlation_id="c2")
    amqp.publish(requests_queue, [1, 2, 3], correlation_id="c3")
    amqp.publish(requests_queue, {"connection": "main", "operation": "documentsList"}, correlation_id="c4")
    amqp.publish(requests_queue, {"id": "x" * 129, "connection": "main"}, correlation_id="c5")
    dead = amqp.collect(queue_names["HYPATOS_DEAD_LETTER_QUEUE"], 5, timeout_s=30)
    assert sorted(p.correlation_id for p, _ in dead) == ["c1", "c2", "c3", "c4", "c5"]
    for properties, _ in dead:
        assert properties.headers["x-hypatos-dead-reason"]
        assert properties.headers["x-hypatos-source-queue"] == requests_queue
    # The worker still serves.
    document = emulator.seed_documents(1)[0]
    amqp.publish(
        requests_queue,
        {"id": "ok", "connection": "main", "operation": "documentsGetById", "params": {"id": document["id"]}},
    )
    [(_, result)] = amqp.collect(queue_names["HYPATOS_RESULT_QUEUE"], 1, timeout_s=30)
    assert result["status"] == "succeeded"
    assert amqp.message_count(queue_names["HYPATOS_RESULT_QUEUE"]) == 0
