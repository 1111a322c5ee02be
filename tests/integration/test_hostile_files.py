"""Hostile files and parameters through the queue: what the worker sends and writes stays safe.

Real worker processes, real RabbitMQ, the emulator over HTTP.  The inbox is raced (a folder swapped
for a link to a folder outside it while the request is being executed), outbox names are made to
collide, and parameters carry what JSON allows but HTTP does not.
"""

from __future__ import annotations

import base64
import hashlib
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.amqp import AmqpTestClient
from tests.support.processes import WorkerFleet

pytestmark = pytest.mark.integration

INSIDE = b"%PDF-1.7\n% the file inside the inbox\n" + b"i" * 2000
OUTSIDE = b"%PDF-1.7\n% a file OUTSIDE the inbox that must never leave\n" + b"o" * 2000
TOKEN_OPERATION = "Authorization_requestAccessToken"


def _wait_for(condition: Any, amqp: AmqpTestClient, timeout_s: float = 60.0) -> None:
    """Poll `condition` (keeping the AMQP connection serviced) until it holds."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        amqp.connection.sleep(0.02)


def _publish(amqp: AmqpTestClient, queues: dict[str, str], request: dict[str, Any]) -> None:
    amqp.publish(queues["HYPATOS_REQUEST_QUEUE"], {"connection": "main", **request})


def _run(amqp: AmqpTestClient, queues: dict[str, str], *requests: dict[str, Any]) -> dict[str, Any]:
    """Publish `requests` (connection ``main`` unless given) and return their results by id."""
    for request in requests:
        _publish(amqp, queues, request)
    results = amqp.collect(queues["HYPATOS_RESULT_QUEUE"], len(requests), timeout_s=120)
    assert len(results) == len(requests), results
    return {result["id"]: result for _, result in results}


def test_given_an_inbox_folder_swapped_for_a_link_during_the_token_request_then_the_outside_file_never_leaves(
    fleet: WorkerFleet, amqp: AmqpTestClient, emulator: Any, queue_names: dict[str, str], tmp_path: Path
) -> None:
    # Given: an inbox with sub/inv.pdf, a folder outside it with its own inv.pdf, and a slow token
    # endpoint (the worker's first request has to wait for a token)
    inbox, outside = tmp_path / "inbox", tmp_path / "outside"
    (inbox / "sub").mkdir(parents=True)
    outside.mkdir()
    (inbox / "sub" / "inv.pdf").write_bytes(INSIDE)
    (outside / "inv.pdf").write_bytes(OUTSIDE)
    emulator.set_faults(token_latency_ms=3000)
    fleet.start(1, HYPATOS_INBOX_DIR=str(inbox))
    # When: the upload is accepted and, while its token request is in flight, sub/ becomes a link
    _publish(amqp, queue_names, {"id": "race", "operation": "uploadFile", "file": {"path": "sub/inv.pdf"}})
    _wait_for(lambda: emulator.counters()["operations"].get(TOKEN_OPERATION, 0) >= 1, amqp)
    (inbox / "sub").rename(inbox / "sub-old")
    (inbox / "sub").symlink_to(outside, target_is_directory=True)
    [(_, result)] = amqp.collect(queue_names["HYPATOS_RESULT_QUEUE"], 1, timeout_s=120)
    # Then: a safe outcome: the inbox file was uploaded (it was open before the swap) or refused
    uploads = [c for c in emulator.requests() if c["operation"] == "Files_uploadFile"]
    assert all(base64.b64decode(c["body"]) != OUTSIDE for c in uploads)
    if result["status"] == "failed":
        assert result["error"]["code"] == "validation_error" and uploads == [], result
        return
    assert [base64.b64decode(c["body"]) for c in uploads] == [INSIDE]
    # And: the file Hypatos stored holds the inbox bytes
    emulator.set_faults(token_latency_ms=0)
    stored = _run(
        amqp,
        queue_names,
        {
            "id": "check",
            "operation": "retrieveFile",
            "output": "base64",
            "params": {"id": result["data"]["id"]},
        },
    )["check"]
    assert base64.b64decode(stored["data"]["content_base64"]) == INSIDE


def _outbox_name(connection: str, request_id: str, filename: str) -> str:
    """The outbox name as the README describes it (for names that need no shortening)."""
    safe = "".join(ch if ch.isascii() and (ch.isalnum() or ch in "._-") else "_" for ch in request_id)
    digest = hashlib.sha256(f"{connection}\x00{request_id}".encode()).hexdigest()[:12]
    return f"{connection}--{safe}--{digest}--{filename}"


def test_given_outbox_names_that_used_to_collide_then_no_download_replaces_another_file(
    fleet: WorkerFleet,
    amqp: AmqpTestClient,
    emulator: Any,
    queue_names: dict[str, str],
    tmp_path: Path,
    connections_file: Path,
) -> None:
    # Given: two connections; an outbox already holding a file under the old shared name and one
    # under the name the first download will want; a download size limit
    with connections_file.open("a", encoding="utf-8") as extra:
        extra.write(
            f'\n[connections.other]\nendpoint_url = "{emulator.base_url}"\n'
            'client_id = "test-client"\nclient_secret = "test-secret"\n'
        )
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    (outbox / "inv_7--invoice.pdf").write_bytes(b"an older download")
    wanted = _outbox_name("main", "inv 7", "invoice.pdf")
    (outbox / wanted).write_bytes(b"someone else's file")
    small = emulator.seed_file(INSIDE, "application/pdf", "invoice.pdf")
    other = emulator.seed_file(OUTSIDE, "application/pdf", "invoice.pdf")
    big = emulator.seed_file(b"%PDF-1.7\n" + b"b" * 200_000, "application/pdf", "big.pdf")
    fleet.start(1, HYPATOS_OUTBOX_DIR=str(outbox), HYPATOS_MAX_DOWNLOAD_BYTES="100000")
    # When: ids that read alike are downloaded on different connections, and one file is too large
    results = _run(
        amqp,
        queue_names,
        {"id": "inv 7", "operation": "retrieveFile", "params": {"id": small["id"]}},
        {"id": "inv/7", "connection": "other", "operation": "retrieveFile", "params": {"id": other["id"]}},
        {"id": "too big", "operation": "retrieveFile", "params": {"id": big["id"]}},
    )
    # Then: each download has its own file, and no file that was there changed
    first, second = results["inv 7"]["data"], results["inv/7"]["data"]
    assert first["path"] == wanted.replace(".pdf", "-2.pdf")
    assert second["path"] == _outbox_name("other", "inv/7", "invoice.pdf")
    assert (outbox / first["path"]).read_bytes() == INSIDE
    assert (outbox / second["path"]).read_bytes() == OUTSIDE
    assert (outbox / "inv_7--invoice.pdf").read_bytes() == b"an older download"
    assert (outbox / wanted).read_bytes() == b"someone else's file"
    # And: the download over the limit failed clearly and left nothing behind
    too_big = results["too big"]
    assert too_big["status"] == "failed" and too_big["error"]["code"] == "payload_too_large"
    assert "HYPATOS_MAX_DOWNLOAD_BYTES" in too_big["error"]["message"]
    assert sorted(p.name for p in outbox.iterdir()) == sorted(
        ["inv_7--invoice.pdf", wanted, first["path"], second["path"]]
    )


HOSTILE = [
    # (request, field named in details); text that is not valid Unicode (a lone surrogate) is refused
    # where the message enters, as invalid_request, the rest by the operation's validation
    ({"operation": "retrieveDocumentStates", "params": {"id": ".."}}, "params.id"),
    ({"operation": "deleteSupplier", "params": {"externalId": "."}}, "params.externalId"),
    ({"operation": "documentsGetById", "params": {"id": "d\u0000"}}, "params.id"),
    ({"operation": "documentsList", "params": {"fileId": "\ud800"}}, "params.fileId", "invalid_request"),
    (
        {
            "operation": "insertSupplier",
            "params": {"X-Hy-Meta-Internal-Company-Id": "c1\r\nX-Evil: 1"},
            "body": {"externalId": "S1", "name": "Acme"},
        },
        "params.X-Hy-Meta-Internal-Company-Id",
    ),
    (
        {
            "operation": "uploadFile",
            "params": {"X-Hy-Filename": "a\ud800.pdf"},
            "file": {"base64": "JVBERi0xLjcK"},
        },
        "params.X-Hy-Filename",
        "invalid_request",
    ),
    (
        {
            "operation": "uploadFile",
            "params": {"X-Hy-Filename": "ä" * 100 + ".pdf"},
            "file": {"base64": "JVBERi0xLjcK"},
        },
        "params.X-Hy-Filename",
    ),
    ({"operation": "uploadFile", "file": {"path": "inv\u0000.pdf"}}, "file.path"),
    ({"operation": "uploadFile", "file": {"path": "/etc/passwd"}}, "file.path"),
    (
        {"operation": "insertSupplier", "body": {"externalId": "S1", "name": "Acme \ud800"}},
        "body.name",
        "invalid_request",
    ),
]


def test_given_parameters_that_cannot_be_sent_then_each_gets_validation_error_and_no_call_is_made(
    fleet: WorkerFleet, amqp: AmqpTestClient, emulator: Any, queue_names: dict[str, str], tmp_path: Path
) -> None:
    (tmp_path / "inbox").mkdir()
    project = emulator.seed_project(name="Big documents")
    emulator.seed_documents(60, project_id=project["id"], state="done")
    fleet.start(1, HYPATOS_INBOX_DIR=str(tmp_path / "inbox"), HYPATOS_MAX_RESULT_BYTES="20000")
    results = _run(amqp, queue_names, *({"id": f"hostile-{i}", **row[0]} for i, row in enumerate(HOSTILE)))
    for index, (_, field, *code) in enumerate(HOSTILE):
        result = results[f"hostile-{index}"]
        expected = code[0] if code else "validation_error"
        assert result["status"] == "failed" and result["error"]["code"] == expected, result
        assert field in [d["field"] for d in result["error"]["details"]], result
        assert result["attempts"] == 0
    assert emulator.counters()["operations"] == {}
    # And: (the worker still serving) a list walk past HYPATOS_MAX_RESULT_BYTES fails clearly
    walk = {
        "id": "all",
        "operation": "documentsList",
        "all_pages": True,
        "params": {"projectId": project["id"], "limit": 20},
    }
    listed = _run(amqp, queue_names, walk)["all"]
    assert listed["status"] == "failed" and listed["error"]["code"] == "result_too_large", listed
    assert listed["error"]["retryable"] is False and "max_items" in listed["error"]["message"]
    assert 1 <= listed["attempts"] < 3
