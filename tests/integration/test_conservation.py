"""Every message is someone else's neighbour: a conservation law over valid and hostile messages.

Every message published to the request queue ends as exactly one result or one dead letter, and no
valid message ever ends as a dead letter, or without its result, because of another.
"""

from __future__ import annotations

import os
import random
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.support.amqp import AmqpTestClient
from tests.support.delivery import Results, alive, get_document, readme_error_codes, take_all
from tests.support.malformed import (
    TEST_MAX_REQUEST_BYTES,
    Malformed,
    answerable,
    generate,
    hostile_answerable,
    hostile_unanswerable,
    unanswerable,
)
from tests.support.processes import WorkerFleet

pytestmark = pytest.mark.integration

VALID = 1000


def peak_rss_mb(pid: int) -> int:
    """The process's peak resident memory (VmHWM), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) // 1024
    raise AssertionError("no VmHWM")


@pytest.mark.timeout(420)
def test_given_1000_valid_requests_among_hostile_ones_then_each_message_ends_as_one_result_or_one_dead_letter(
    fleet: WorkerFleet, amqp: AmqpTestClient, emulator: Any, queue_names: dict[str, str], tmp_path: Path
) -> None:
    # Given: one worker (request limit 64 KiB) and, shuffled together, 1,000 valid requests and 500
    # hostile messages: too large, nested too deep, invalid text, NUL and CR/LF where they do not
    # belong, dot segments, internal reply_to queues, plus generated wrong types and raw bytes
    seed = int(os.environ.get("HYPATOS_TEST_MALFORMED_SEED") or random.getrandbits(32))
    hostile = (
        generate(hostile_unanswerable, 120, seed)
        + generate(hostile_answerable, 180, seed)
        + generate(unanswerable, 80, seed)
        + generate(answerable, 120, seed)
    )
    documents = emulator.seed_documents(5)
    run = uuid.uuid4().hex[:6]
    messages: list[tuple[str, Malformed | None, dict[str, Any] | None]] = [
        (f"v-{i}", None, get_document(f"{run}-valid-{i}", documents[i % 5]["id"])) for i in range(VALID)
    ]
    messages += [(f"h-{i}", message, None) for i, message in enumerate(hostile)]
    random.Random(seed).shuffle(messages)
    (tmp_path / "inbox").mkdir()
    fleet.start(
        1, HYPATOS_MAX_REQUEST_BYTES=str(TEST_MAX_REQUEST_BYTES), HYPATOS_INBOX_DIR=str(tmp_path / "inbox")
    )
    internal = {
        "@request": queue_names["HYPATOS_REQUEST_QUEUE"],
        "@dead": queue_names["HYPATOS_DEAD_LETTER_QUEUE"],
        "@tasks": queue_names["HYPATOS_TASK_QUEUE"],
    }

    # When: all are published, each with its own correlation id
    answered: dict[str, tuple[str, str | None]] = {}  # correlation id -> (request id, expected code)
    dead_expected: dict[str, bytes] = {}
    for correlation_id, message, request in messages:
        if message is None:
            assert request is not None
            amqp.publish(queue_names["HYPATOS_REQUEST_QUEUE"], request, correlation_id=correlation_id)
            answered[correlation_id] = (request["id"], None)
            continue
        body, request_id = message.encode(f"{run}-{correlation_id}-")
        reply_to = internal.get(message.reply_to or "", message.reply_to)
        amqp.publish(
            queue_names["HYPATOS_REQUEST_QUEUE"],
            body,
            raw=True,
            correlation_id=correlation_id,
            reply_to=reply_to,
        )
        if request_id is None:
            dead_expected[correlation_id] = body
        else:  # a raw message may happen to carry a usable id: then any documented failure will do
            answered[correlation_id] = (request_id, message.expected_code or "any")
    results = Results(amqp, queue_names["HYPATOS_RESULT_QUEUE"])
    results.until(lambda r: r.received >= len(answered), timeout_s=300)
    dead = take_all(amqp, queue_names["HYPATOS_DEAD_LETTER_QUEUE"], len(dead_expected), 60)

    # Then: every valid request succeeded, once, answering its correlation id
    wrong = []
    codes = readme_error_codes()
    for correlation_id, (request_id, code) in answered.items():
        received = results.by_id.get(request_id, [])
        if len(received) != 1 or received[0][0].correlation_id != correlation_id:
            wrong.append((correlation_id, request_id, f"{len(received)} results"))
            continue
        result = received[0][1]
        if code is None:
            ok = result["status"] == "succeeded"
        else:  # every hostile message with a usable id: one failed result, its code, no call made
            error = result["error"] or {}
            ok = (
                result["status"] == "failed" and error.get("code") in codes and code in (error["code"], "any")
            )
            ok = ok and result["attempts"] == 0 and (code != "invalid_request" or bool(error["details"]))
        if not ok:
            wrong.append((correlation_id, code, result))
    assert wrong == [], (f"HYPATOS_TEST_MALFORMED_SEED={seed}", wrong[:10])
    # And: every other message is a dead letter, alone, unchanged, with its reason; no valid one is
    dead_by_correlation = {properties.correlation_id: (properties, body) for properties, body in dead}
    assert not any(key.startswith("v-") for key in dead_by_correlation)
    missing = [
        key
        for key, body in dead_expected.items()
        if dead_by_correlation.get(key, (None, None))[1] != body
        or not dead_by_correlation[key][0].headers.get("x-hypatos-dead-reason")
    ]
    assert missing == [], (f"HYPATOS_TEST_MALFORMED_SEED={seed}", missing[:10])
    # And: the law holds: as many outcomes as messages, nothing left over
    assert results.received + len(dead) == len(messages)
    assert amqp.message_count(queue_names["HYPATOS_RESULT_QUEUE"]) == 0
    assert amqp.message_count(queue_names["HYPATOS_DEAD_LETTER_QUEUE"]) == 0
    assert amqp.message_count(queue_names["HYPATOS_REQUEST_QUEUE"]) == 0
    # And: the worker kept serving in bounded memory
    assert alive(fleet) == [0]
    assert peak_rss_mb(fleet.processes[0].pid) < 300
