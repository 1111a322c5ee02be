"""The demo's broker-free mode and the results printer, in this process against the emulator."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from tests.support.inprocess import emulator_connection, write_connections
from worker.settings import WorkerSettings
from worker.tools.in_process import handle_without_broker
from worker.tools.results import decode, format_result, summary


def test_given_no_broker_then_the_handler_answers_each_request_and_sets_aside_the_undecodable(
    emulator: Any, tmp_path: Path
) -> None:
    document = emulator.seed_documents(1)[0]
    path = write_connections(tmp_path / "connections.toml", {"main": emulator_connection(emulator)})
    settings = WorkerSettings(_env_file=None, connections_file=path, allow_custom_endpoints=True)
    bodies = [
        json.dumps(
            {
                "id": "get",
                "connection": "main",
                "operation": "documentsGetById",
                "params": {"id": document["id"]},
            }
        ).encode(),
        json.dumps(
            {"id": "bad", "connection": "main", "operation": "documentsList", "params": {"limit": 500}}
        ).encode(),
        b"not json",
    ]
    done: list[int] = []
    results, dead = asyncio.run(handle_without_broker(settings, bodies, timeout_s=30, on_done=done.append))
    by_id = {r["id"]: r for r in map(json.loads, results)}
    assert by_id["get"]["status"] == "succeeded" and by_id["get"]["data"]["id"] == document["id"]
    assert by_id["bad"]["error"]["code"] == "validation_error"
    assert len(dead) == 1 and "JSON" in dead[0]
    assert done == [1, 2, 3]


def test_results_are_printed_for_people_or_as_json() -> None:
    listed = {
        "id": "r1",
        "operation": "documentsList",
        "status": "succeeded",
        "http_status": 200,
        "data": {"data": [1, 2], "totalCount": 9},
        "error": None,
    }
    failed = {
        "id": "r2",
        "operation": "documentsList",
        "status": "failed",
        "http_status": None,
        "data": None,
        "error": {"code": "validation_error", "message": "limit"},
    }
    document = {**listed, "data": {"id": "d1", "state": "done", "title": "T"}}
    assert "2 of 9 items" in format_result(listed, as_json=False)
    assert "no call" in format_result(failed, as_json=False) and "validation_error: limit" in summary(failed)
    assert "state=done" in format_result(document, as_json=False)
    assert json.loads(format_result(listed, as_json=True)) == listed
    assert format_result([1], as_json=False).startswith("(not a result")
    assert decode(b'{"id": "x"}') == {"id": "x"} and decode(b"\xff text") == "\ufffd text"
