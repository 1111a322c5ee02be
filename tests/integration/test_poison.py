"""Malformed and poison messages: each gets a clear failed result or the dead-letter queue, and the
worker keeps serving; the dead-letter commands list, replay and purge what ends up there."""

from __future__ import annotations

import json
import os
import random
import uuid
from typing import Any

import pytest

from tests.support.amqp import AmqpTestClient
from tests.support.delivery import (
    Results,
    alive,
    get_document,
    log_events,
    readme_error_codes,
    run_cli,
    take_all,
    wait_until,
)
from tests.support.malformed import answerable, generate, unanswerable
from tests.support.processes import WorkerFleet

pytestmark = pytest.mark.integration


@pytest.mark.timeout(240)
def test_given_1100_generated_malformed_messages_then_each_gets_a_failed_result_or_a_dead_letter(
    fleet: WorkerFleet, amqp: AmqpTestClient, emulator, queue_names: dict[str, str]
) -> None:
    # Given: one worker and 1,100 generated messages: raw bytes, text, JSON that is not an object,
    # objects without a usable id, and requests with an id but wrong fields, operation, connection,
    # parameters or body
    seed = int(os.environ.get("HYPATOS_TEST_MALFORMED_SEED") or random.getrandbits(32))
    messages = generate(unanswerable, 450, seed) + generate(answerable, 650, seed)
    random.Random(seed).shuffle(messages)
    fleet.start(1)
    run = uuid.uuid4().hex[:6]

    # When: they are all published, each with its own correlation id
    expected: dict[str, tuple[Any, bytes, str | None]] = {}
    for index, message in enumerate(messages):
        body, request_id = message.encode(f"{run}-{index}-")
        correlation_id = f"m-{index}"
        expected[correlation_id] = (message, body, request_id)
        amqp.publish(queue_names["HYPATOS_REQUEST_QUEUE"], body, raw=True, correlation_id=correlation_id)
    answered = {key for key, (_, _, request_id) in expected.items() if request_id is not None}
    results = Results(amqp, queue_names["HYPATOS_RESULT_QUEUE"])
    results.until(lambda r: r.received >= len(answered), timeout_s=180)
    dead = take_all(amqp, queue_names["HYPATOS_DEAD_LETTER_QUEUE"], len(expected) - len(answered), 60)

    # Then: every message with a usable id got exactly one failed result with its expected code...
    codes = readme_error_codes()
    wrong = []
    for correlation_id in sorted(answered):
        message, _, request_id = expected[correlation_id]
        received = results.by_id.get(request_id, [])
        if len(received) != 1:
            wrong.append((message.kind, request_id, f"{len(received)} results"))
            continue
        properties, result = received[0]
        error = result["error"] or {}
        if not (
            properties.correlation_id == correlation_id
            and result["status"] == "failed"
            and error.get("code") == message.expected_code
            and error["code"] in codes
            and error["retryable"] is False
            and result["attempts"] == 0
            and result["http_status"] is None
            and (error["code"] not in ("invalid_request", "validation_error") or error["details"])
        ):
            wrong.append((message.kind, message.request, result))
    assert wrong == [], (f"HYPATOS_TEST_MALFORMED_SEED={seed}", wrong[:10])
    # ...and every other one is in the dead-letter queue, unchanged, with the reason
    dead_by_correlation = {properties.correlation_id: (properties, body) for properties, body in dead}
    missing_dead = []
    for correlation_id, (message, body, request_id) in expected.items():
        if request_id is not None:
            continue
        properties, dead_body = dead_by_correlation.get(correlation_id, (None, None))
        if properties is None or dead_body != body or not properties.headers.get("x-hypatos-dead-reason"):
            missing_dead.append((message.kind, body[:80], dead_body and dead_body[:80]))
    assert missing_dead == [], (f"HYPATOS_TEST_MALFORMED_SEED={seed}", missing_dead[:10])
    assert results.received + len(dead) == len(expected)
    assert amqp.message_count(queue_names["HYPATOS_RESULT_QUEUE"]) == 0
    assert amqp.message_count(queue_names["HYPATOS_DEAD_LETTER_QUEUE"]) == 0
    # And: no API call was made for any of them, and the worker still serves a valid request
    assert emulator.counters()["operations"] == {}
    assert alive(fleet) == [0]
    document = emulator.seed_documents(1)[0]
    amqp.publish(queue_names["HYPATOS_REQUEST_QUEUE"], get_document(f"{run}-valid", document["id"]))
    assert not results.until_all([f"{run}-valid"], timeout_s=30)
    assert results.first(f"{run}-valid")["status"] == "succeeded"


def declare_full_queue(amqp: AmqpTestClient) -> str:
    """A reply queue that refuses every message (length 0, overflow rejects publishes): the broker nacks."""
    name = f"full-{uuid.uuid4().hex[:8]}"
    amqp.channel.queue_declare(
        queue=name, auto_delete=True, arguments={"x-max-length": 0, "x-overflow": "reject-publish"}
    )
    return name


@pytest.mark.timeout(120)
def test_given_a_result_the_broker_keeps_refusing_then_its_request_is_dead_lettered_after_the_delivery_limit(
    fleet: WorkerFleet, amqp: AmqpTestClient, emulator, queue_names: dict[str, str]
) -> None:
    # Given: a worker with a delivery limit of 3, valid requests flowing, and a reply queue that
    # refuses every message
    documents = emulator.seed_documents(3)
    limit = 3
    fleet.start(1, HYPATOS_DELIVERY_LIMIT=str(limit))
    full = declare_full_queue(amqp)

    # When: a request answering to that queue is published among valid requests
    requests_queue = queue_names["HYPATOS_REQUEST_QUEUE"]
    for i in range(10):
        amqp.publish(requests_queue, get_document(f"before-{i}", documents[i % 3]["id"]))
    amqp.publish(
        requests_queue, get_document("refused", documents[0]["id"]), reply_to=full, correlation_id="poison-1"
    )
    for i in range(10):
        amqp.publish(requests_queue, get_document(f"after-{i}", documents[i % 3]["id"]))

    # Then: it goes back to the queue each time, and RabbitMQ dead-letters it after the delivery limit,
    # unchanged, with its x-death record
    dead = take_all(amqp, queue_names["HYPATOS_DEAD_LETTER_QUEUE"], 1, timeout_s=60)
    assert len(dead) == 1, fleet.logs()[-3000:]
    properties, body = dead[0]
    [death] = properties.headers["x-death"]
    assert death["reason"] == "delivery_limit", death
    assert death["queue"] == requests_queue
    assert json.loads(body)["id"] == "refused" and properties.correlation_id == "poison-1"
    requeued = log_events(fleet.logs(), "request_requeued")
    assert limit <= len(requeued) <= limit + 1, len(requeued)  # RabbitMQ counts redeliveries
    # And: the Hypatos call was made once; later deliveries replayed the stored result
    assert len([c for c in emulator.requests() if c["operation"] == "Documents_getById"]) == 21
    # And: the worker kept serving: every valid request succeeded, and it still runs
    results = Results(amqp, queue_names["HYPATOS_RESULT_QUEUE"])
    ids = [f"{when}-{i}" for when in ("before", "after") for i in range(10)]
    assert not results.until_all(ids, timeout_s=60)
    assert all(results.first(key)["status"] == "succeeded" for key in ids)
    assert alive(fleet) == [0]


@pytest.mark.timeout(180)
def test_given_dead_letters_then_the_cli_lists_replays_and_purges_them(
    fleet: WorkerFleet, amqp: AmqpTestClient, emulator, queue_names: dict[str, str]
) -> None:
    # Given: three dead letters: a body that is not JSON (set aside by the worker), a result whose
    # reply_to queue does not exist, and a request RabbitMQ dead-lettered after the delivery limit
    # (its reply queue kept refusing the result)
    document = emulator.seed_documents(1)[0]
    fleet.start(1, HYPATOS_DELIVERY_LIMIT="2")
    env = {**fleet.env, "HYPATOS_DELIVERY_LIMIT": "2"}
    dead_queue = queue_names["HYPATOS_DEAD_LETTER_QUEUE"]
    requests_queue = queue_names["HYPATOS_REQUEST_QUEUE"]
    full = declare_full_queue(amqp)
    amqp.publish(requests_queue, b"{not json", raw=True, correlation_id="cli-raw")
    amqp.publish(
        requests_queue,
        get_document("cli-lost", document["id"]),
        reply_to="no-such-queue",
        correlation_id="cli-lost-corr",
    )
    amqp.publish(
        requests_queue, get_document("cli-replay", document["id"]), reply_to=full, correlation_id="cli-corr"
    )
    wait_until(lambda: amqp.message_count(dead_queue) == 3, timeout_s=60, what="3 dead letters")

    # When/Then: `list --json` shows all three with their reasons, and removes nothing
    listed = run_cli(env, "dead-letters", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    entries = json.loads(listed.stdout)
    assert len(entries) == 3
    [raw] = [e for e in entries if e["correlation_id"] == "cli-raw"]
    [lost] = [e for e in entries if e["correlation_id"] == "cli-lost-corr"]
    [request] = [e for e in entries if e["correlation_id"] == "cli-corr"]
    assert "JSON" in raw["reason"] and raw["request_id"] is None, raw
    assert raw["source_queue"] == requests_queue
    assert "no-such-queue" in lost["reason"] and lost["request_id"] is None, lost
    assert lost["source_queue"] == "no-such-queue"
    assert "delivery_limit" in request["reason"] and request["request_id"] == "cli-replay", request
    assert request["source_queue"] == requests_queue
    assert amqp.message_count(dead_queue) == 3
    # When/Then: once its reply queue takes messages again, `replay --id` sends the one request back;
    # its stored result is published, to its reply queue and correlation id
    amqp.channel.queue_delete(queue=full)
    amqp.channel.queue_declare(queue=full, auto_delete=True)
    replayed = run_cli(env, "dead-letters", "replay", "--id", "cli-replay")
    assert replayed.returncode == 0 and "1 replayed" in replayed.stdout, replayed
    [(properties, result)] = amqp.collect(full, 1, timeout_s=30)
    assert properties.correlation_id == "cli-corr" and result["status"] == "succeeded"
    assert properties.headers["x-hypatos-replayed"] is True
    assert amqp.message_count(dead_queue) == 2
    # When/Then: `replay` of the rest replays nothing (neither holds a request), `purge --yes` empties it
    rest = run_cli(env, "dead-letters", "replay")
    assert rest.returncode == 0 and "0 replayed" in rest.stdout, rest
    assert amqp.message_count(dead_queue) == 2
    purged = run_cli(env, "dead-letters", "purge", "--yes")
    assert purged.returncode == 0 and "2 message(s) deleted" in purged.stdout, purged
    assert amqp.message_count(dead_queue) == 0
