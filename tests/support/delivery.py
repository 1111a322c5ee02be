"""Helpers for delivery-guarantee tests: collecting results by id, polling, emulator internals, the CLI."""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from tests.support.amqp import AmqpTestClient
from tests.support.processes import WorkerFleet


def get_document(request_id: str, document_id: str) -> dict[str, Any]:
    """A ``documentsGetById`` request on the connection ``main``."""
    return {
        "id": request_id,
        "connection": "main",
        "operation": "documentsGetById",
        "params": {"id": document_id},
    }


def process_file(request_id: str, file_id: str, project_id: str) -> dict[str, Any]:
    """A ``processFileIntoDocument`` request whose document carries the request id as its externalId."""
    return {
        "id": request_id,
        "connection": "main",
        "operation": "processFileIntoDocument",
        "body": {"fileId": file_id, "projectId": project_id, "externalId": request_id},
    }


def publish_all(amqp: AmqpTestClient, queue: str, requests: list[dict[str, Any]]) -> None:
    """Publish each request with the correlation id ``corr-<request id>``."""
    for request in requests:
        amqp.publish(queue, request, correlation_id=f"corr-{request['id']}")


def wait_until(
    condition: Callable[[], Any], timeout_s: float, *, interval_s: float = 0.1, what: str = ""
) -> Any:
    """Poll `condition` until it returns something truthy; that value, or `TimeoutError`."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"not reached within {timeout_s}s: {what or condition}")
        time.sleep(interval_s)


class Results:
    """Results taken from one queue, grouped by request id (at-least-once: an id may come twice)."""

    def __init__(self, amqp: AmqpTestClient, queue: str) -> None:
        self.amqp = amqp
        self.queue = queue
        self.by_id: dict[str, list[tuple[Any, dict[str, Any]]]] = defaultdict(list)
        self.received = 0

    def take(self, *, max_messages: int = 100_000) -> int:
        """Take whatever is in the queue now; returns how many messages were taken."""
        taken = 0
        while taken < max_messages:
            method, properties, body = self.amqp.channel.basic_get(queue=self.queue, auto_ack=True)
            if method is None:
                break
            result = json.loads(body)
            self.by_id[result["id"]].append((properties, result))
            taken += 1
        self.received += taken
        return taken

    def until(self, condition: Callable[[Results], bool], timeout_s: float) -> bool:
        """Keep taking results until `condition(self)` holds; whether it did before `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        while not condition(self):
            if time.monotonic() >= deadline:
                return False
            if not self.take(max_messages=20):  # small steps: the condition is checked close to when it holds
                self.amqp.connection.sleep(0.05)
        return True

    def until_all(self, ids: Iterable[str], timeout_s: float) -> set[str]:
        """Take results until every id in `ids` has one; returns the ids still missing."""
        wanted = set(ids)
        self.until(lambda r: wanted <= r.by_id.keys(), timeout_s)
        return wanted - self.by_id.keys()

    def first(self, request_id: str) -> dict[str, Any]:
        """The first result received for `request_id`."""
        return self.by_id[request_id][0][1]

    def replayed(self) -> set[str]:
        """Ids that got a stored result published again (header ``x-hypatos-replayed``)."""
        return {
            key
            for key, found in self.by_id.items()
            if any((properties.headers or {}).get("x-hypatos-replayed") for properties, _ in found)
        }

    def duplicates(self) -> dict[str, int]:
        """Ids that got more than one result, with how many."""
        return {key: len(found) for key, found in self.by_id.items() if len(found) > 1}


def assert_identical_duplicates(results: Results) -> None:
    """At-least-once: an id may get its result twice, but with identical content and its correlation id."""
    for request_id, received in results.by_id.items():
        assert {props.correlation_id for props, _ in received} == {f"corr-{request_id}"}
        differing = [result for _, result in received if result != received[0][1]]
        assert differing == [], (request_id, [result for _, result in received])


def alive(fleet: WorkerFleet) -> list[int]:
    """Indexes of the fleet's processes still running."""
    return [index for index, process in enumerate(fleet.processes) if process.poll() is None]


def wait_for_fleet(fleet: WorkerFleet, amqp: AmqpTestClient, timeout_s: float = 60.0) -> None:
    """Wait until every live worker consumes both the request and the task queue."""
    count = len(alive(fleet))
    amqp.wait_for_consumers(fleet.env["HYPATOS_REQUEST_QUEUE"], count, timeout_s)
    amqp.wait_for_consumers(fleet.env["HYPATOS_TASK_QUEUE"], count, timeout_s)


def log_events(logs: str, event: str) -> list[dict[str, Any]]:
    """The JSON log lines of `event` (lines that are not JSON are skipped)."""
    found = []
    for line in logs.splitlines():
        if f'"{event}"' not in line:
            continue
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("event") == event:
            found.append(record)
    return found


def api_calls(counters: dict[str, Any]) -> int:
    """Calls the emulator received, token requests excluded."""
    return sum(n for name, n in counters["operations"].items() if name != "Authorization_requestAccessToken")


def emulator_documents(emulator: Any) -> list[dict[str, Any]]:
    """Every document the emulator holds: id, externalId, fileId, projectId (read on its loop)."""

    def read(admin: Any) -> list[dict[str, Any]]:
        return [
            {"id": d.id, "externalId": d.external_id, "fileId": d.file_id, "projectId": d.project_id}
            for d in admin.emu.store.documents.values()
        ]

    return emulator._call(read)


def issued_tokens(emulator: Any) -> set[str]:
    """Access tokens the emulator knows now, plus every bearer token seen in its request log."""
    live = set(emulator._call(lambda admin: list(admin.emu.auth.tokens)))
    logged = {
        entry["headers"]["authorization"].partition(" ")[2]
        for entry in emulator.requests()
        if entry["headers"].get("authorization", "").lower().startswith("bearer ")
    }
    return live | {token for token in logged if token}


def take_all(amqp: AmqpTestClient, queue: str, count: int, timeout_s: float) -> list[tuple[Any, bytes]]:
    """Up to `count` raw messages (properties, body) from `queue`, waiting at most `timeout_s`."""
    taken: list[tuple[Any, bytes]] = []

    def more() -> bool:
        while len(taken) < count:
            method, properties, body = amqp.channel.basic_get(queue=queue, auto_ack=True)
            if method is None:
                return False
            taken.append((properties, body))
        return True

    with contextlib.suppress(TimeoutError):
        wait_until(more, timeout_s, interval_s=0.05)
    return taken


def run_cli(env: dict[str, str], *args: str, timeout_s: float = 60.0) -> subprocess.CompletedProcess[str]:
    """Run ``hypatos-worker <args>`` as a user would, with the test's settings."""
    return subprocess.run(
        [sys.executable, "-m", "worker", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


def wait_for_exit(process: subprocess.Popen[bytes], timeout_s: float) -> int | None:
    """The process's exit code, or None when it is still running after `timeout_s`."""
    try:
        return process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return None


def readme_error_codes() -> set[str]:
    """The codes of the README's "Error codes" table (the public contract)."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    table = readme.split("### Error codes", 1)[1].split("\n#", 1)[0]
    codes: set[str] = set()
    for line in table.splitlines():
        if line.startswith("| `"):
            codes |= set(re.findall(r"`([a-z_]+)`", line.split("|")[1]))
    return codes
