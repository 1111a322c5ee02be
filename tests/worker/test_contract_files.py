"""The committed contract files are exactly what the code generates, so they cannot drift."""

from __future__ import annotations

import json
from pathlib import Path

from worker.queues import broker_definitions
from worker.schemas import rendered
from worker.settings import WorkerSettings

ROOT = Path(__file__).resolve().parents[2]


def test_the_committed_json_schemas_match_the_message_models() -> None:
    for name, content in rendered().items():
        committed = (ROOT / "schemas" / name).read_text(encoding="utf-8")
        assert committed == content, f"schemas/{name} is stale: run `hypatos-worker schemas`"


def test_the_committed_broker_definitions_match_the_default_topology() -> None:
    committed = json.loads((ROOT / "ops" / "rabbitmq" / "definitions.json").read_text(encoding="utf-8"))
    assert committed == broker_definitions(
        WorkerSettings(
            _env_file=None,
            request_queue="hypatos.requests",
            result_queue="hypatos.results",
            dead_letter_queue="hypatos.dead",
            task_queue="hypatos.tasks",
            queue_type="quorum",
            delivery_limit=5,
        )
    )


def test_the_request_schema_requires_the_three_fields_and_bounds_the_id() -> None:
    schema = json.loads(rendered()["request.schema.json"])
    assert set(schema["required"]) == {"id", "connection", "operation"}
    assert schema["properties"]["id"]["maxLength"] == 128
    assert schema["additionalProperties"] is False
