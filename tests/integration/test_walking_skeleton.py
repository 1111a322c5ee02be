"""The whole path, end to end: plain AMQP in, a token, a Hypatos call, a result out."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.amqp import AmqpTestClient
from tests.support.delivery import log_events
from tests.support.processes import WorkerFleet

pytestmark = pytest.mark.integration


def _request(index: int, document_id: str) -> dict[str, object]:
    return {
        "id": f"req-{index}",
        "connection": "main",
        "operation": "documentsGetById",
        "params": {"id": document_id},
    }


def test_given_200_plain_amqp_requests_then_200_correct_results_with_their_correlation_ids(
    fleet: WorkerFleet, amqp: AmqpTestClient, emulator, queue_names: dict[str, str]
) -> None:
    # Given: documents in the emulator and one real worker process
    documents = emulator.seed_documents(25)
    fleet.start(1)
    # When: 200 requests are published with a plain AMQP client, each with its own correlation id
    expected = {}
    for index in range(200):
        document = documents[index % len(documents)]
        expected[f"corr-{index}"] = (f"req-{index}", document["id"])
        amqp.publish(
            queue_names["HYPATOS_REQUEST_QUEUE"],
            _request(index, document["id"]),
            correlation_id=f"corr-{index}",
        )
    results = amqp.collect(queue_names["HYPATOS_RESULT_QUEUE"], 200, timeout_s=120)
    # Then: 200 correct results, each carrying its request's correlation id
    assert len(results) == 200, fleet.logs()[-3000:]
    for properties, result in results:
        request_id, document_id = expected.pop(properties.correlation_id)
        assert result["id"] == request_id
        assert result["status"] == "succeeded", result
        assert result["http_status"] == 200
        assert result["data"]["id"] == document_id
        assert result["error"] is None
        assert result["connection"] == "main" and result["operation"] == "documentsGetById"
        assert result["attempts"] == 1 and result["duration_ms"] >= 0
    assert expected == {}
    # And: one token request for the one worker process
    assert emulator.counters()["token_requests"] == 1


def test_given_reply_to_then_the_result_goes_there(
    fleet: WorkerFleet, amqp: AmqpTestClient, emulator, queue_names: dict[str, str]
) -> None:
    document = emulator.seed_documents(1)[0]
    fleet.start(1)
    reply_queue = amqp.declare_reply_queue()
    amqp.publish(
        queue_names["HYPATOS_REQUEST_QUEUE"],
        _request(1, document["id"]),
        correlation_id="abc",
        reply_to=reply_queue,
    )
    [(properties, result)] = amqp.collect(reply_queue, 1, timeout_s=30)
    assert properties.correlation_id == "abc"
    assert result["status"] == "succeeded" and result["data"]["id"] == document["id"]
    assert amqp.message_count(queue_names["HYPATOS_RESULT_QUEUE"]) == 0


def test_given_a_list_request_with_repeatable_filters_then_the_envelope_comes_back(
    fleet: WorkerFleet, amqp: AmqpTestClient, emulator, queue_names: dict[str, str]
) -> None:
    project = emulator.seed_project(name="Invoices")
    emulator.seed_documents(3, project_id=project["id"], state="done")
    emulator.seed_documents(2, project_id=project["id"], state="failed")
    emulator.seed_documents(4)
    fleet.start(1)
    amqp.publish(
        queue_names["HYPATOS_REQUEST_QUEUE"],
        {
            "id": "list-1",
            "connection": "main",
            "operation": "documentsList",
            "params": {
                "projectId": [project["id"]],
                "state": ["done", "failed"],
                "limit": 10,
                "sort": "-createdAt",
            },
        },
    )
    [(_, result)] = amqp.collect(queue_names["HYPATOS_RESULT_QUEUE"], 1, timeout_s=30)
    assert result["status"] == "succeeded", result
    assert result["data"]["totalCount"] == 5
    assert {doc["state"] for doc in result["data"]["data"]} == {"done", "failed"}
    [call] = [r for r in emulator.requests() if r["path"].endswith("/documents")]
    assert call["query"]["state"] == ["done", "failed"]
    assert call["query"]["projectId"] == [project["id"]]


def test_given_a_cold_connection_then_concurrent_requests_share_one_token_request(
    fleet: WorkerFleet, amqp: AmqpTestClient, emulator, queue_names: dict[str, str]
) -> None:
    # Given: a slow token endpoint, so every request arrives while the first token is being fetched
    documents = emulator.seed_documents(5)
    emulator.set_faults(token_latency_ms=800)
    fleet.start(1, concurrency=50)
    # When: 50 requests arrive at once on the cold connection
    for index in range(50):
        amqp.publish(queue_names["HYPATOS_REQUEST_QUEUE"], _request(index, documents[index % 5]["id"]))
    results = amqp.collect(queue_names["HYPATOS_RESULT_QUEUE"], 50, timeout_s=60)
    # Then: all succeed on one token
    assert [r["status"] for _, r in results] == ["succeeded"] * 50
    assert emulator.counters()["token_requests"] == 1


def test_given_a_traceparent_then_it_reaches_the_logs_and_the_result_headers(
    fleet: WorkerFleet, amqp: AmqpTestClient, emulator: Any, queue_names: dict[str, str]
) -> None:
    document = emulator.seed_documents(1)[0]
    fleet.start(1)
    trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    request = {
        "id": "traced",
        "connection": "main",
        "operation": "documentsGetById",
        "params": {"id": document["id"]},
    }
    amqp.publish(queue_names["HYPATOS_REQUEST_QUEUE"], request, headers={"traceparent": trace})
    [(properties, result)] = amqp.collect(queue_names["HYPATOS_RESULT_QUEUE"], 1, timeout_s=30)
    assert result["status"] == "succeeded" and properties.headers["traceparent"] == trace
    done = [e for e in log_events(fleet.logs(), "request_done") if e.get("request_id") == "traced"]
    assert [e["traceparent"] for e in done] == [trace]
