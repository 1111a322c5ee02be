"""Delivery guarantees with real workers: nothing lost, nothing done twice, every failure explained."""

from __future__ import annotations

import base64
import json
import signal
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.support.amqp import AmqpTestClient
from tests.support.delivery import (
    Results,
    alive,
    api_calls,
    assert_identical_duplicates,
    emulator_documents,
    get_document,
    issued_tokens,
    log_events,
    process_file,
    publish_all,
    run_cli,
    wait_for_exit,
    wait_until,
)
from tests.support.metrics import free_port, scrape, total
from tests.support.processes import WorkerFleet

pytestmark = pytest.mark.integration


@pytest.mark.timeout(300)
def test_given_a_batch_of_1000_when_a_worker_is_killed_then_every_id_gets_a_result_and_none_is_created_twice(
    fleet: WorkerFleet, amqp: AmqpTestClient, emulator, queue_names: dict[str, str], redis_env: dict[str, str]
) -> None:
    # Given: documents to read, one file per creation, API calls slow enough to be in flight, and
    # two workers sharing a Redis result store
    project = emulator.seed_project(name="Kill test")
    documents = emulator.seed_documents(50, project_id=project["id"])
    requests: list[dict[str, Any]] = []
    for index in range(1000):
        request_id = f"kill-{index}"
        if index % 5 < 2:
            file = emulator.seed_file(b"%PDF-1.4 kill test file " + request_id.encode())
            requests.append(process_file(request_id, file["id"], project["id"]))
        else:
            requests.append(get_document(request_id, documents[index % len(documents)]["id"]))
    creations = {r["id"]: r for r in requests if r["operation"] == "processFileIntoDocument"}
    emulator.set_faults(latency_ms=100, jitter_ms=20)
    fleet.declare_queues()
    publish_all(amqp, queue_names["HYPATOS_REQUEST_QUEUE"], requests)
    results = Results(amqp, queue_names["HYPATOS_RESULT_QUEUE"])

    # When: two workers take the waiting batch and, while worker 0 is executing requests (its own
    # metrics say so), it is killed with SIGKILL (and a replacement started)
    metrics_port = free_port()
    fleet.start(1, wait=False, HYPATOS_METRICS_PORT=str(metrics_port), **redis_env)
    fleet.start(1, **redis_env)
    wait_until(
        lambda: (
            total(metrics_port, "hypatos_api_attempts_total") >= 20
            and total(metrics_port, "hypatos_requests_in_flight") >= 8
        ),
        timeout_s=120,
        interval_s=0.02,
        what="worker 0 calling the API with requests in flight",
    )
    fleet.kill(0, signal.SIGKILL)
    fleet.processes[0].wait(timeout=10)
    fleet.start(1, wait=False, **redis_env)
    missing = results.until_all([r["id"] for r in requests], timeout_s=120)

    # Then: every id has its result, all succeeded, and repeated results agree
    assert not missing, (sorted(missing)[:20], fleet.logs()[-5000:])
    failed = {
        key: results.first(key)["error"]
        for key in results.by_id
        if results.first(key)["status"] != "succeeded"
    }
    assert failed == {}
    assert_identical_duplicates(results)
    for request in requests:
        result = results.first(request["id"])
        if request["operation"] == "documentsGetById":
            assert result["data"]["id"] == request["params"]["id"]
    # And: each creation ran at most once (one document per externalId) and its result names that document
    created = [d for d in emulator_documents(emulator) if d["externalId"] in creations]
    per_external_id = Counter(d["externalId"] for d in created)
    assert {key: n for key, n in per_external_id.items() if n > 1} == {}, "a creation ran twice"
    by_external_id = {d["externalId"]: d for d in created}
    wrong = {}
    for request_id, request in creations.items():
        data = results.first(request_id)["data"]
        document = by_external_id.get(request_id)
        if (
            document is None
            or data["documentId"] != document["id"]
            or data["fileId"] != request["body"]["fileId"]
        ):
            wrong[request_id] = {"result": data, "emulator": document}
    assert wrong == {}
    # And: the surviving workers still run
    assert alive(fleet) == [1, 2]
    # And: the kill really interrupted requests, or the test proved nothing. An interrupted request is
    # redone in one of two ways: its call is made again (the kill came before its result was stored),
    # or its stored result is published again (the kill came after, while it waited for its publish
    # confirm or its acknowledgement; under a loaded broker that is where most requests wait)
    calls_made_again = calls_received(emulator) - len(requests)
    assert calls_made_again > 0 or results.replayed(), (calls_made_again, results.duplicates())


@pytest.mark.timeout(120)
def test_given_an_interrupted_creation_of_a_file_another_request_processed_then_it_gets_its_own_document(
    fleet: WorkerFleet, amqp: AmqpTestClient, emulator, queue_names: dict[str, str], redis_env: dict[str, str]
) -> None:
    # Given: request "first" processed file F into project P (its document carries externalId "first")
    project = emulator.seed_project(name="Reconcile test")
    file = emulator.seed_file(b"%PDF-1.4 reconcile test")
    fleet.start(1, **redis_env)
    requests_queue, results_queue = queue_names["HYPATOS_REQUEST_QUEUE"], queue_names["HYPATOS_RESULT_QUEUE"]
    publish_all(amqp, requests_queue, [process_file("first", file["id"], project["id"])])
    results = Results(amqp, results_queue)
    assert not results.until_all(["first"], timeout_s=30)
    # And: request "second" for the same file was interrupted after taking its creation claim and
    # before its call reached Hypatos (the state a worker killed at that moment leaves behind)
    store = redis.Redis.from_url(redis_env["HYPATOS_REDIS_URL"])
    store.set(f"{redis_env['HYPATOS_REDIS_PREFIX']}started:second", repr(time.time()), px=600_000)

    # When: "second" is delivered again
    publish_all(amqp, requests_queue, [process_file("second", file["id"], project["id"])])
    assert not results.until_all(["second"], timeout_s=30)

    # Then: "second" gets the document created for it, not the one created for "first"
    documents = {d["externalId"]: d for d in emulator_documents(emulator)}
    first, second = results.first("first"), results.first("second")
    assert first["status"] == "succeeded" and first["data"]["documentId"] == documents["first"]["id"]
    assert second["status"] == "succeeded", second
    assert "second" in documents, (
        f"no document was ever created for request 'second'; its result names {second['data']}, "
        f"the document of request 'first' ({documents['first']['id']})"
    )
    assert second["data"]["documentId"] == documents["second"]["id"]


@pytest.mark.timeout(120)
def test_given_a_creating_request_delivered_twice_at_once_then_it_is_executed_once(
    fleet: WorkerFleet, amqp: AmqpTestClient, emulator, queue_names: dict[str, str], redis_env: dict[str, str]
) -> None:
    # Given: two workers sharing Redis, and API calls whose latency varies (100-400 ms) as real ones do
    project = emulator.seed_project(name="Duplicate delivery test")
    requests = [
        process_file(f"twice-{i}", emulator.seed_file(b"%PDF-1.4 twice " + bytes([i]))["id"], project["id"])
        for i in range(20)
    ]
    emulator.set_faults(latency_ms=100, jitter_ms=300)
    fleet.start(2, **redis_env)

    # When: each request arrives twice in a row (what a redelivery after a lost acknowledgement, or a
    # publisher retrying after a lost confirm, produces)
    publish_all(amqp, queue_names["HYPATOS_REQUEST_QUEUE"], [r for r in requests for _ in range(2)])
    results = Results(amqp, queue_names["HYPATOS_RESULT_QUEUE"])
    assert results.until(lambda r: r.received >= 2 * len(requests), timeout_s=60), fleet.logs()[-3000:]

    # Then: each file was processed once, and both results name that one document
    documents = Counter(d["externalId"] for d in emulator_documents(emulator))
    assert {key: n for key, n in documents.items() if n != 1} == {}, "created more than once"
    by_external_id = {d["externalId"]: d["id"] for d in emulator_documents(emulator)}
    for request in requests:
        named = {result["data"]["documentId"] for _, result in results.by_id[request["id"]]}
        assert named == {by_external_id[request["id"]]}
    assert_identical_duplicates(results)


def calls_received(emulator) -> int:
    """API calls the emulator has received so far (counted on arrival, before its latency)."""
    return api_calls(emulator.counters())


@pytest.mark.timeout(120)
def test_given_requests_in_flight_when_sigterm_then_they_complete_and_a_second_worker_takes_the_rest(
    fleet: WorkerFleet, amqp: AmqpTestClient, emulator, queue_names: dict[str, str]
) -> None:
    # Given: one worker running 4 requests at a time, each API call taking 2 s
    documents = emulator.seed_documents(5)
    emulator.set_faults(latency_ms=2000)
    fleet.start(1, concurrency=4, HYPATOS_SHUTDOWN_TIMEOUT_S="20")
    requests = [get_document(f"term-{i}", documents[i % 5]["id"]) for i in range(20)]
    publish_all(amqp, queue_names["HYPATOS_REQUEST_QUEUE"], requests)
    wait_until(lambda: calls_received(emulator) >= 4, timeout_s=30, what="4 calls in flight")

    # When: the worker gets SIGTERM while its 4 calls are in flight
    signalled = time.monotonic()
    fleet.kill(0, signal.SIGTERM)
    returncode = wait_for_exit(fleet.processes[0], timeout_s=30)
    exited_after_s = time.monotonic() - signalled

    # Then: it finished those 4 (results published) and started nothing else, and exited cleanly
    results = Results(amqp, queue_names["HYPATOS_RESULT_QUEUE"])
    results.take()
    assert returncode == 0, fleet.logs()[-3000:]
    assert exited_after_s < 20
    assert len(results.by_id) == 4, fleet.logs()[-3000:]
    assert all(results.first(key)["status"] == "succeeded" for key in results.by_id)
    assert calls_received(emulator) == 4
    # And: a second worker processes the other 16; each request ran exactly once
    emulator.set_faults(latency_ms=0)
    fleet.start(1, wait=False)
    missing = results.until_all([r["id"] for r in requests], timeout_s=60)
    assert not missing, fleet.logs()[-3000:]
    assert results.duplicates() == {}
    assert all(results.first(key)["status"] == "succeeded" for key in results.by_id)
    assert calls_received(emulator) == 20


@pytest.mark.timeout(120)
def test_given_calls_longer_than_the_shutdown_timeout_when_sigterm_then_it_exits_in_time_and_they_run_again(
    fleet: WorkerFleet, amqp: AmqpTestClient, emulator, queue_names: dict[str, str]
) -> None:
    # Given: a worker with a 2 s shutdown timeout, running 4 requests whose API calls take 8 s
    documents = emulator.seed_documents(4)
    emulator.set_faults(latency_ms=8000)
    fleet.start(1, concurrency=4, HYPATOS_SHUTDOWN_TIMEOUT_S="2")
    requests = [get_document(f"slow-{i}", documents[i]["id"]) for i in range(4)]
    publish_all(amqp, queue_names["HYPATOS_REQUEST_QUEUE"], requests)
    wait_until(lambda: calls_received(emulator) >= 4, timeout_s=30, what="4 calls in flight")

    # When: the worker gets SIGTERM
    signalled = time.monotonic()
    fleet.kill(0, signal.SIGTERM)
    returncode = wait_for_exit(fleet.processes[0], timeout_s=2 + 8)
    exited_after_s = time.monotonic() - signalled

    # Then: it exits within the timeout (plus a few seconds), without publishing results
    assert returncode is not None, (
        f"still running {exited_after_s:.0f} s after SIGTERM: {fleet.logs()[-3000:]}"
    )
    assert log_events(fleet.logs(), "shutdown_timeout_reached")
    results = Results(amqp, queue_names["HYPATOS_RESULT_QUEUE"])
    results.take()
    assert results.received == 0
    # And: the 4 requests were handed back: a second worker runs them
    emulator.set_faults(latency_ms=0)
    fleet.start(1, wait=False)
    missing = results.until_all([r["id"] for r in requests], timeout_s=60)
    assert not missing, fleet.logs()[-3000:]
    assert all(results.first(key)["status"] == "succeeded" for key in results.by_id)


@pytest.mark.timeout(180)
def test_given_20_percent_5xx_and_a_tight_rate_limit_then_every_request_succeeds_within_the_retry_budget(
    fleet: WorkerFleet, amqp: AmqpTestClient, emulator, queue_names: dict[str, str]
) -> None:
    # Given: an emulator answering 20 % of API calls with 500/502/503 and allowing 60 calls a second
    documents = emulator.seed_documents(20)
    emulator.set_faults(error_rate=0.2, rate_limit=60, rate_window_s=1)
    max_attempts = 10
    # (not learning the rate from the headers, so the quota lets the 429s under test happen)
    fleet.start(1, HYPATOS_REQUEST_ATTEMPTS=str(max_attempts), HYPATOS_QUOTA_LEARN="0")

    # When: 300 requests are published
    requests = [get_document(f"faults-{i}", documents[i % 20]["id"]) for i in range(300)]
    publish_all(amqp, queue_names["HYPATOS_REQUEST_QUEUE"], requests)
    results = Results(amqp, queue_names["HYPATOS_RESULT_QUEUE"])
    missing = results.until_all([r["id"] for r in requests], timeout_s=150)

    # Then: every request succeeded, none used more attempts than the budget allows
    assert not missing, fleet.logs()[-3000:]
    firsts = [results.first(r["id"]) for r in requests]
    assert [r["id"] for r in firsts if r["status"] != "succeeded"] == []
    assert max(r["attempts"] for r in firsts) <= max_attempts
    # And: the faults really happened, and every API call is accounted for in some result's attempts
    counters = emulator.counters()
    assert counters["rate_limited"] > 0 and counters["injected_errors"] > 0, counters
    assert results.duplicates() == {}
    assert sum(r["attempts"] for r in firsts) == api_calls(counters), counters


@pytest.mark.timeout(120)
def test_given_a_rate_limit_wait_longer_than_the_inline_maximum_then_it_is_handed_to_the_broker(
    fleet: WorkerFleet, amqp: AmqpTestClient, emulator, queue_names: dict[str, str]
) -> None:
    # Given: a quota of 15 calls per 3 s window and a worker that waits at most 0.5 s in place
    documents = emulator.seed_documents(5)
    emulator.set_faults(rate_limit=15, rate_window_s=3)
    # (not learning the rate from the headers, so the quota lets the 429s under test happen)
    fleet.start(1, HYPATOS_INLINE_WAIT_MAX_S="0.5", HYPATOS_QUOTA_LEARN="0")

    # When: 40 requests arrive at once
    requests = [get_document(f"deferred-{i}", documents[i % 5]["id"]) for i in range(40)]
    publish_all(amqp, queue_names["HYPATOS_REQUEST_QUEUE"], requests)
    results = Results(amqp, queue_names["HYPATOS_RESULT_QUEUE"])
    missing = results.until_all([r["id"] for r in requests], timeout_s=90)

    # Then: they all succeed; the long waits went to the broker, none was spent in place
    assert not missing, fleet.logs()[-3000:]
    assert all(results.first(r["id"])["status"] == "succeeded" for r in requests)
    logs = fleet.logs()
    deferred = log_events(logs, "request_deferred")
    assert deferred and {d["error_code"] for d in deferred} == {"rate_limited"}
    assert all(d["delay_s"] >= 1 for d in deferred)
    assert all(r["wait_s"] <= 0.5 for r in log_events(logs, "hypatos_call_retrying"))
    assert emulator.counters()["rate_limited"] > 0


@pytest.mark.timeout(120)
def test_given_a_request_with_a_published_result_when_its_id_comes_again_then_the_stored_result_is_replayed(
    fleet: WorkerFleet, amqp: AmqpTestClient, emulator, queue_names: dict[str, str], redis_env: dict[str, str]
) -> None:
    # Given: two workers sharing Redis; a read and a creation have their results
    project = emulator.seed_project(name="Replay test")
    document = emulator.seed_documents(1, project_id=project["id"])[0]
    file = emulator.seed_file(b"%PDF-1.4 replay test")
    fleet.start(2, **redis_env)
    requests_queue = queue_names["HYPATOS_REQUEST_QUEUE"]
    originals = [
        get_document("replay-read", document["id"]),
        process_file("replay-create", file["id"], project["id"]),
    ]
    publish_all(amqp, requests_queue, originals)
    results = Results(amqp, queue_names["HYPATOS_RESULT_QUEUE"])
    assert not results.until_all(["replay-read", "replay-create"], timeout_s=30)
    first_results = {key: results.first(key) for key in ("replay-read", "replay-create")}

    # When: each request is submitted twice more, with new correlation ids
    for round_ in range(2):
        for request in originals:
            amqp.publish(requests_queue, request, correlation_id=f"again-{round_}-{request['id']}")
    assert results.until(lambda r: r.received == 6, timeout_s=30), fleet.logs()[-3000:]

    # Then: each repeat gets the stored result, identical, marked as replayed, with its own correlation id
    for request_id, received in results.by_id.items():
        (first_props, _), *repeats = received
        assert (first_props.headers or {}).get("x-hypatos-replayed") is None
        assert len(repeats) == 2
        for props, result in repeats:
            assert result == first_results[request_id]
            assert props.headers["x-hypatos-replayed"] is True
            assert props.headers["x-hypatos-request-id"] == request_id
            assert props.correlation_id.startswith("again-") and props.correlation_id.endswith(request_id)
    # And: Hypatos saw one call per request, and one document was created
    operations = emulator.counters()["operations"]
    assert operations["Documents_getById"] == 1 and operations["Documents_processFileIntoDocument"] == 1
    assert [d["externalId"] for d in emulator_documents(emulator)].count("replay-create") == 1


def secret_connections(path: Path, emulator, secrets: dict[str, str]) -> None:
    """Connections with their secret inline, from an environment variable, from a file, and a wrong one."""
    (path.parent / "svc-file.secret").write_text(secrets["file"] + "\n")
    path.write_text(
        f'[connections.main]\nendpoint_url = "{emulator.base_url}"\nclient_id = "svc-main"\n'
        f'client_secret = "{secrets["main"]}"\n\n'
        f'[connections.fromenv]\nendpoint_url = "{emulator.base_url}"\nclient_id = "svc-env"\n'
        'client_secret_env = "SVC_ENV_CLIENT_SECRET"\n\n'
        f'[connections.fromfile]\nendpoint_url = "{emulator.base_url}"\nclient_id = "svc-file"\n'
        'client_secret_file = "svc-file.secret"\n\n'
        f'[connections.wrong]\nendpoint_url = "{emulator.base_url}"\nclient_id = "svc-main"\n'
        f'client_secret = "{secrets["wrong"]}"\n'
    )


@pytest.mark.timeout(180)
def stored_values(redis_env: dict[str, str]) -> list[bytes]:
    """Every result the workers stored in Redis under the test's prefix (the token cache is Redis's job)."""
    client = redis.Redis.from_url(redis_env["HYPATOS_REDIS_URL"])
    keys = list(client.scan_iter(match=f"{redis_env['HYPATOS_REDIS_PREFIX']}result:*"))
    return [value for key in keys if (value := client.get(key))]


def test_given_a_workload_with_token_renewals_and_refusals_then_no_secret_and_no_token_appears_anywhere(
    fleet: WorkerFleet,
    amqp: AmqpTestClient,
    emulator,
    queue_names: dict[str, str],
    connections_file: Path,
    redis_env: dict[str, str],
) -> None:
    # Given: three API clients with distinctive secrets, connections using them in every way the
    # connections file allows plus one with a wrong secret; short-lived tokens; a server that echoes
    # the Authorization header (bearer token or Basic credentials) in every error body; verbose workers
    # serving metrics
    secrets = {name: f"{name}-secret-{uuid.uuid4().hex}" for name in ("main", "env", "file", "wrong")}
    for client_id, name in (("svc-main", "main"), ("svc-env", "env"), ("svc-file", "file")):
        emulator.add_client(client_id, secrets[name])
    secret_connections(connections_file, emulator, secrets)
    emulator.set_faults(token_lifetime_s=3, echo_credentials=True)
    documents = emulator.seed_documents(10)
    worker_env = {"HYPATOS_LOG_LEVEL": "DEBUG", "SVC_ENV_CLIENT_SECRET": secrets["env"], **redis_env}
    ports = [free_port(), free_port()]
    for port in ports:
        fleet.start(1, HYPATOS_METRICS_PORT=str(port), **worker_env)
    requests_queue = queue_names["HYPATOS_REQUEST_QUEUE"]
    results = Results(amqp, queue_names["HYPATOS_RESULT_QUEUE"])
    tokens: set[str] = set()

    def run_phase(phase: str) -> None:
        batch = []
        for connection in ("main", "fromenv", "fromfile"):
            for i in range(15):
                request = get_document(f"{phase}-{connection}-{i}", documents[i % 10]["id"])
                batch.append({**request, "connection": connection})
        for connection in ("main", "fromenv", "fromfile", "wrong"):
            batch.append(
                {"id": f"{phase}-test-{connection}", "connection": connection, "operation": "testConnection"}
            )
        batch += [
            {**get_document(f"{phase}-wrong-{i}", documents[0]["id"]), "connection": "wrong"}
            for i in range(3)
        ]
        batch += [  # answered 404, with the bearer token echoed in the error body
            {**get_document(f"{phase}-missing-{connection}", "f" * 24), "connection": connection}
            for connection in ("main", "fromenv", "fromfile")
        ]
        publish_all(amqp, requests_queue, batch)
        assert not results.until_all([r["id"] for r in batch], timeout_s=60), fleet.logs()[-3000:]
        tokens.update(issued_tokens(emulator))

    # When: requests run on every connection, then again after all tokens were revoked, then again
    # after the emulator's clock moved past every token's expiry; test-connection runs from the CLI;
    # a message without an id is dead-lettered
    run_phase("fresh")
    emulator.revoke_tokens()
    run_phase("revoked")
    emulator.advance_clock(60)
    run_phase("expired")
    cli_env = {**fleet.env, "SVC_ENV_CLIENT_SECRET": secrets["env"]}
    cli = run_cli(cli_env, "test-connection", "--all", "--json")
    amqp.publish(requests_queue, {"connection": "main", "token": "none"}, correlation_id="no-id")
    dead = amqp.collect(queue_names["HYPATOS_DEAD_LETTER_QUEUE"], 1, timeout_s=30)
    tokens.update(issued_tokens(emulator))

    # Then: the workload did what it should (tokens renewed, refusals and reports produced)
    assert results.first("fresh-wrong-0")["error"]["code"] == "auth_failed"
    assert results.first("fresh-test-main")["status"] == "succeeded"
    assert results.first("expired-fromfile-3")["status"] == "succeeded"
    assert len(dead) == 1 and '"credentials_accepted"' in cli.stdout
    assert len(tokens) >= 9, "expected at least three tokens per connection"
    missing = results.first("fresh-missing-main")
    assert missing["error"]["code"] == "not_found" and "[REDACTED]" in json.dumps(missing), missing
    stored = stored_values(redis_env)
    assert any(b"missing" in value for value in stored), "the 404 results are stored"
    scraped = [scrape(port) for port in ports]
    # And: no secret (alone or as HTTP Basic credentials) and no token is in any log, result, dead
    # letter or CLI output
    haystack = "\n".join(
        [
            fleet.logs(),
            cli.stdout,
            cli.stderr,
            *(
                json.dumps(result) + repr(props)
                for received in results.by_id.values()
                for props, result in received
            ),
            *(repr(body) + repr(props) for props, body in dead),
            *(value.decode("utf-8", "replace") for value in stored),
            *scraped,
        ]
    )
    basic = {
        base64.b64encode(f"{client_id}:{secrets[name]}".encode()).decode()
        for client_id, name in (
            ("svc-main", "main"),
            ("svc-env", "env"),
            ("svc-file", "file"),
            ("svc-main", "wrong"),
        )
    }
    leaked = [s for s in (*secrets.values(), *basic) if s in haystack]
    leaked += [f"token {t[:6]}..." for t in tokens if t in haystack]
    assert leaked == []
