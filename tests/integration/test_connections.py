"""Connections, tokens and Test Connection with real worker processes, RabbitMQ, Redis and the emulator."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import write_connections
from tests.support.amqp import AmqpTestClient
from tests.support.processes import WorkerFleet

pytestmark = pytest.mark.integration


def _get(index: int, document_id: str, connection: str = "main") -> dict[str, Any]:
    return {
        "id": f"req-{index}",
        "connection": connection,
        "operation": "documentsGetById",
        "params": {"id": document_id},
    }


def _publish_gets(
    amqp: AmqpTestClient, queue: str, documents: list[dict[str, Any]], count: int, **kw: Any
) -> None:
    for index in range(count):
        amqp.publish(queue, _get(index, documents[index % len(documents)]["id"], **kw))


def test_given_four_workers_sharing_redis_then_500_concurrent_requests_cost_one_token_request(
    fleet: WorkerFleet,
    amqp: AmqpTestClient,
    emulator: Any,
    queue_names: dict[str, str],
    redis_env: dict[str, str],
) -> None:
    # Given: a slow token endpoint, so a fleet starting at once would stampede it
    documents = emulator.seed_documents(20)
    emulator.set_faults(token_latency_ms=300)
    fleet.start(4, concurrency=50, **redis_env)
    # When: 500 requests arrive at once on the cold connection
    _publish_gets(amqp, queue_names["HYPATOS_REQUEST_QUEUE"], documents, 500)
    results = amqp.collect(queue_names["HYPATOS_RESULT_QUEUE"], 500, timeout_s=120)
    # Then: all succeed, and the whole fleet made one token request
    assert len(results) == 500
    assert {r["status"] for _, r in results} == {"succeeded"}
    assert emulator.counters()["token_requests"] == 1, fleet.logs()[-2000:]


def test_given_tokens_revoked_mid_run_then_every_request_succeeds(
    fleet: WorkerFleet,
    amqp: AmqpTestClient,
    emulator: Any,
    queue_names: dict[str, str],
    redis_env: dict[str, str],
) -> None:
    documents = emulator.seed_documents(10)
    emulator.set_faults(latency_ms=5)
    fleet.start(2, **redis_env)
    requests_queue = queue_names["HYPATOS_REQUEST_QUEUE"]
    _publish_gets(amqp, requests_queue, documents, 100)
    first = amqp.collect(queue_names["HYPATOS_RESULT_QUEUE"], 100, timeout_s=60)
    # When: every token is revoked while more requests arrive
    emulator.revoke_tokens()
    for index in range(100, 300):
        amqp.publish(requests_queue, _get(index, documents[index % 10]["id"]))
    second = amqp.collect(queue_names["HYPATOS_RESULT_QUEUE"], 200, timeout_s=60)
    # Then: nothing fails; the fleet renewed its token (once, thanks to Redis, or a few times at most)
    assert {r["status"] for _, r in first + second} == {"succeeded"}
    assert 2 <= emulator.counters()["token_requests"] <= 3
    assert "access_token_refused_renewing" in fleet.logs()


def test_given_a_wrong_secret_then_results_are_auth_failed_and_token_requests_stay_bounded(
    fleet: WorkerFleet,
    amqp: AmqpTestClient,
    emulator: Any,
    queue_names: dict[str, str],
    tmp_path: Path,
    connections_file: Path,
) -> None:
    write_connections(connections_file, emulator, client_secret="not-the-secret")
    documents = emulator.seed_documents(3)
    fleet.start(2)
    _publish_gets(amqp, queue_names["HYPATOS_REQUEST_QUEUE"], documents, 60)
    results = [r for _, r in amqp.collect(queue_names["HYPATOS_RESULT_QUEUE"], 60, timeout_s=60)]
    assert len(results) == 60
    assert {r["error"]["code"] for r in results} == {"auth_failed"}
    assert all(not r["error"]["retryable"] and "client_secret" in r["error"]["message"] for r in results)
    # One refused token request per worker process per cool-down, not one per message.
    counters = emulator.counters()
    assert counters["token_requests"] <= 2
    assert set(counters["operations"]) <= {"Authorization_requestAccessToken"}  # no API call was made


def test_given_the_secret_is_rotated_in_the_file_then_the_next_request_uses_it(
    fleet: WorkerFleet,
    amqp: AmqpTestClient,
    emulator: Any,
    queue_names: dict[str, str],
    connections_file: Path,
) -> None:
    document = emulator.seed_documents(1)[0]
    emulator.add_client("rotating", "secret-one")
    write_connections(connections_file, emulator, client_id="rotating", client_secret="secret-one")
    fleet.start(1)
    requests_queue, results_queue = queue_names["HYPATOS_REQUEST_QUEUE"], queue_names["HYPATOS_RESULT_QUEUE"]
    amqp.publish(requests_queue, _get(1, document["id"]))
    [(_, before)] = amqp.collect(results_queue, 1, timeout_s=30)
    # When: Hypatos issues a new secret (the old one stops working) and the file is updated
    emulator.add_client("rotating", "secret-two")
    emulator.revoke_tokens("rotating")
    time.sleep(0.01)  # a new modification time even on coarse file systems
    write_connections(connections_file, emulator, client_id="rotating", client_secret="secret-two")
    amqp.publish(requests_queue, _get(2, document["id"]))
    [(_, after)] = amqp.collect(results_queue, 1, timeout_s=30)
    # Then: the next request succeeds with the new secret, without a restart
    assert before["status"] == "succeeded" and after["status"] == "succeeded", after
    assert "connections_reloaded" in fleet.logs()


def test_given_an_endpoint_outside_the_allowlist_then_the_worker_refuses_to_start(
    tmp_path: Path, emulator: Any
) -> None:
    path = write_connections(tmp_path / "c.toml", emulator)
    env = {**os.environ, "HYPATOS_CONNECTIONS_FILE": str(path)}
    env.pop("HYPATOS_ALLOW_CUSTOM_ENDPOINTS", None)
    done = subprocess.run(
        [sys.executable, "-m", "worker", "run"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode != 0
    assert "'main'" in done.stderr and "not a Hypatos server" in done.stderr
    assert "HYPATOS_ALLOW_CUSTOM_ENDPOINTS" in done.stderr


def test_given_a_test_connection_request_on_the_queue_then_the_report_comes_back(
    fleet: WorkerFleet, amqp: AmqpTestClient, emulator: Any, queue_names: dict[str, str]
) -> None:
    fleet.start(1)
    amqp.publish(
        queue_names["HYPATOS_REQUEST_QUEUE"],
        {"id": "t1", "connection": "main", "operation": "testConnection"},
    )
    [(_, result)] = amqp.collect(queue_names["HYPATOS_RESULT_QUEUE"], 1, timeout_s=30)
    assert result["status"] == "succeeded", result
    assert result["data"]["usable"] is True
    assert {c["name"] for c in result["data"]["checks"]} >= {"credentials_accepted", "scopes", "api_call"}


# --- hypatos-worker test-connection -------------------------------------------------------------


def _test_connection(path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HYPATOS_CONNECTIONS_FILE": str(path), "HYPATOS_ALLOW_CUSTOM_ENDPOINTS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "worker", "test-connection", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _closed_port_url() -> str:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v2"


def test_test_connection_reports_each_failure_kind_with_its_exit_code(tmp_path: Path, emulator: Any) -> None:
    emulator.add_client("reader", "reader-secret", scopes="documents.read")
    path = tmp_path / "c.toml"
    path.write_text(
        f'[connections.good]\nendpoint_url = "{emulator.base_url}"\nclient_id = "test-client"\n'
        'client_secret = "test-secret"\n'
        f'[connections.wrongsecret]\nendpoint_url = "{emulator.base_url}"\nclient_id = "test-client"\n'
        'client_secret = "nope-nope"\n'
        f'[connections.unreachable]\nendpoint_url = "{_closed_port_url()}"\n'
        'client_id = "x"\nclient_secret = "y"\n'
        f'[connections.narrow]\nendpoint_url = "{emulator.base_url}"\nclient_id = "reader"\n'
        'client_secret = "reader-secret"\nscope = "documents.read files.write"\n'
    )
    good = _test_connection(path, "good")
    assert good.returncode == 0 and "usable" in good.stdout and "[FAIL]" not in good.stdout
    wrong = _test_connection(path, "wrongsecret")
    assert (
        wrong.returncode == 1 and "credentials_accepted" in wrong.stdout and "client_secret" in wrong.stdout
    )
    assert "nope-nope" not in wrong.stdout + wrong.stderr
    unreachable = _test_connection(path, "unreachable", "--json")
    report = json.loads(unreachable.stdout)[0]
    assert unreachable.returncode == 1 and report["usable"] is False
    assert report["checks"][0]["name"] == "endpoint_reachable" and report["checks"][0]["status"] == "failed"
    narrow = _test_connection(path, "narrow")
    assert narrow.returncode == 0 and "files.write" in narrow.stdout and "[warn]" in narrow.stdout
    everything = _test_connection(path, "--all", "--json")
    assert everything.returncode == 1
    assert [r["connection"] for r in json.loads(everything.stdout)] == [
        "good",
        "narrow",
        "unreachable",
        "wrongsecret",
    ]
    unknown = _test_connection(path, "nosuch")
    assert unknown.returncode != 0 and "unknown connection 'nosuch'" in unknown.stderr
