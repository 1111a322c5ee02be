"""Tenants: a request id belongs to the connection it was sent on, and a connection may name who uses it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pika
import pytest

from tests.support.amqp import AmqpTestClient, pika_parameters
from tests.support.broker_users import broker_user
from tests.support.delivery import Results
from tests.support.processes import WorkerFleet

pytestmark = pytest.mark.integration


def write_tenants(path: Path, emulator: Any, *, allowed: str | None = None) -> None:
    """Two connections on the emulator: ``acme`` (optionally limited to broker users) and ``other``."""
    fields = (
        f'endpoint_url = "{emulator.base_url}"\nclient_id = "test-client"\nclient_secret = "test-secret"\n'
    )
    extra = f"allowed_users = [{allowed}]\n" if allowed is not None else ""
    path.write_text(f"[connections.acme]\n{fields}{extra}\n[connections.other]\n{fields}", encoding="utf-8")


def calls(emulator: Any, operation: str) -> int:
    return sum(1 for call in emulator.requests() if call["operation"] == operation)


def test_given_an_id_used_on_one_connection_then_another_gets_its_own_result_and_another_request_a_conflict(
    fleet: WorkerFleet,
    amqp: AmqpTestClient,
    emulator: Any,
    queue_names: dict[str, str],
    connections_file: Path,
    redis_env: dict[str, str],
) -> None:
    # Given: two connections and a fleet sharing Redis; acme fetched a document as inv-2026-0001
    write_tenants(connections_file, emulator)
    document = emulator.seed_documents(1)[0]
    fleet.start(2, **redis_env)
    queue = queue_names["HYPATOS_REQUEST_QUEUE"]
    results = Results(amqp, queue_names["HYPATOS_RESULT_QUEUE"])
    mine = {
        "id": "inv-2026-0001",
        "connection": "acme",
        "operation": "documentsGetById",
        "params": {"id": document["id"]},
    }
    amqp.publish(queue, mine, correlation_id="acme-1")
    assert results.until(lambda r: r.received == 1, timeout_s=30)
    # When: another connection reuses the id for its own request
    amqp.publish(
        queue,
        {"id": "inv-2026-0001", "connection": "other", "operation": "companiesList"},
        correlation_id="other-1",
    )
    # Then: it runs its own operation and sees nothing of acme's
    assert results.until(lambda r: r.received == 2, timeout_s=30)
    by_correlation = {p.correlation_id: r for found in results.by_id.values() for p, r in found}
    theirs = by_correlation["other-1"]
    assert theirs["status"] == "succeeded" and theirs["operation"] == "companiesList"
    assert document["id"] not in str(theirs)
    assert calls(emulator, "Companies_list") == 1
    # When: acme sends a different request under the same id, then the same request again
    amqp.publish(queue, {**mine, "operation": "retrieveDocumentStates"}, correlation_id="acme-2")
    amqp.publish(queue, mine, correlation_id="acme-3")
    assert results.until(lambda r: r.received == 4, timeout_s=30)
    by_correlation = {p.correlation_id: (p, r) for found in results.by_id.values() for p, r in found}
    # Then: the different one is refused and runs nothing; the same one gets the stored result again
    conflict = by_correlation["acme-2"][1]
    assert conflict["status"] == "failed" and conflict["error"]["code"] == "id_conflict", conflict
    assert calls(emulator, "Documents_getDocumentStates") == 0
    properties, replayed = by_correlation["acme-3"]
    assert properties.headers["x-hypatos-replayed"] is True
    assert replayed == by_correlation["acme-1"][1]
    assert calls(emulator, "Documents_getById") == 1


def test_given_another_tenant_claims_an_id_first_then_the_owners_upload_still_runs(
    fleet: WorkerFleet,
    amqp: AmqpTestClient,
    emulator: Any,
    queue_names: dict[str, str],
    connections_file: Path,
    redis_env: dict[str, str],
) -> None:
    write_tenants(connections_file, emulator)
    fleet.start(1, **redis_env)
    upload = {"id": "batch-7/inv-0001", "operation": "uploadFile", "file": {"base64": "JVBERi0xLjcK"}}
    amqp.publish(queue_names["HYPATOS_REQUEST_QUEUE"], {**upload, "connection": "other"})
    amqp.publish(queue_names["HYPATOS_REQUEST_QUEUE"], {**upload, "connection": "acme"})
    results = amqp.collect(queue_names["HYPATOS_RESULT_QUEUE"], 2, timeout_s=30)
    assert sorted((r["connection"], r["status"]) for _, r in results) == [
        ("acme", "succeeded"),
        ("other", "succeeded"),
    ]
    assert calls(emulator, "Files_uploadFile") == 2


def test_given_allowed_users_then_only_those_broker_users_may_use_the_connection(
    fleet: WorkerFleet,
    amqp: AmqpTestClient,
    emulator: Any,
    queue_names: dict[str, str],
    connections_file: Path,
    broker_url: str,
) -> None:
    # Given: acme may be used by one broker user only; a second user is allowed nothing on acme
    document = emulator.seed_documents(1)[0]
    with broker_user() as erp, broker_user() as stranger:
        write_tenants(connections_file, emulator, allowed=f'"{erp.name}"')
        fleet.start(1)
        queue, request = (
            queue_names["HYPATOS_REQUEST_QUEUE"],
            {"connection": "acme", "operation": "documentsGetById", "params": {"id": document["id"]}},
        )
        forged = {"x-hypatos-producer": erp.name, "x-hypatos-first-received-at-ms": 1000}
        for user, request_id, user_id, headers in [
            (erp, "by-erp", erp.name, None),
            (stranger, "by-stranger", stranger.name, forged),
            (stranger, "no-user-id", None, forged),
        ]:
            client = AmqpTestClient(erp.url() if user is erp else stranger.url())
            try:
                client.publish(queue, {"id": request_id, **request}, user_id=user_id, headers=headers)
            finally:
                client.close()
        results = Results(amqp, queue_names["HYPATOS_RESULT_QUEUE"])
        assert results.until(lambda r: r.received == 3, timeout_s=30)
    # Then: the allowed user's request ran; the others were refused, whatever their headers said
    assert results.first("by-erp")["status"] == "succeeded"
    for refused in ("by-stranger", "no-user-id"):
        result = results.first(refused)
        assert result["error"]["code"] == "forbidden_connection", result
    assert calls(emulator, "Documents_getById") == 1


def test_given_a_producer_allowed_only_the_request_exchange_then_it_submits_and_reads_but_cannot_go_elsewhere(
    fleet: WorkerFleet, amqp: AmqpTestClient, emulator: Any, queue_names: dict[str, str]
) -> None:
    # Given: the permissions the README gives a producer: write on the request exchange, read on the
    # result queue, configure nothing
    document = emulator.seed_documents(1)[0]
    fleet.start(1)
    requests, results_queue = queue_names["HYPATOS_REQUEST_QUEUE"], queue_names["HYPATOS_RESULT_QUEUE"]
    escaped = {name: name.replace(".", r"\.") for name in (requests, results_queue)}
    with broker_user(
        configure="^$", write=f"^{escaped[requests]}$", read=f"^{escaped[results_queue]}$"
    ) as user:
        producer = AmqpTestClient(user.url())
        try:
            # When: it publishes a request to the request exchange
            request = {
                "id": "via-exchange",
                "connection": "main",
                "operation": "documentsGetById",
                "params": {"id": document["id"]},
            }
            producer.publish(requests, request, exchange=requests)
            # Then: the result arrives where it may read it
            [(_, result)] = producer.collect(results_queue, 1, timeout_s=30)
            assert result["id"] == "via-exchange" and result["status"] == "succeeded"
            # And: publishing straight into the result queue is refused by the broker
            with pytest.raises(pika.exceptions.ChannelClosedByBroker, match="ACCESS_REFUSED"):
                producer.publish(results_queue, {"id": "forged", "status": "succeeded"})
        finally:
            producer.close()
    assert pika_parameters(user.url()).credentials.username == user.name
