"""submit-batch through real worker processes: every file one document, even across a SIGKILL."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from emulator.pdf import text_pdf
from tests.support.amqp import AmqpTestClient
from tests.support.delivery import api_calls, wait_until
from tests.support.metrics import free_port, total
from tests.support.processes import WorkerFleet

pytestmark = pytest.mark.integration

BATCH_SIZE = 1000
CONCURRENCY = 32


def _write_batch(folder: Path, count: int) -> list[str]:
    """`count` distinct PDFs (and one file that is not a document), as a scanner would leave them."""
    folder.mkdir(parents=True)
    names = []
    for index in range(count):
        name = f"inv-{index:05d}.pdf"
        (folder / name).write_bytes(text_pdf([f"INVOICE {index:08d}", "Acme Office Supplies GmbH"]))
        names.append(name)
    (folder / "notes.txt").write_text("not a document\n")
    return names


def _emulator_record(emulator: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every file and document the emulator holds (its own record, read on its loop)."""

    def read(admin: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        store = admin.emu.store
        store.tick(admin.emu.clock.now())
        files = [{"id": f.id, "filename": f.filename} for f in store.files.values()]
        documents = [
            {"id": d.id, "fileId": d.file_id, "projectId": d.project_id, "state": d.state}
            for d in store.documents.values()
        ]
        return files, documents

    return emulator._call(read)


def _submit_batch(env: dict[str, str], folder: Path, project_id: str, report: Path) -> subprocess.Popen[str]:
    command = [
        sys.executable,
        "-m",
        "worker",
        "submit-batch",
        str(folder),
        "--connection",
        "main",
        "--project",
        project_id,
        "--report",
        str(report),
        "--csv",
        str(report.with_suffix(".csv")),
    ]
    return subprocess.Popen(
        command, env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _report(path: Path) -> dict[str, dict[str, Any]]:
    return {line["file"]: line for line in map(json.loads, path.read_text().splitlines())}


@pytest.mark.timeout(900)
def test_given_1000_pdfs_when_a_worker_is_killed_mid_batch_then_each_file_has_exactly_one_document(
    fleet: WorkerFleet, amqp: AmqpTestClient, emulator: Any, redis_env: dict[str, str], tmp_path: Path
) -> None:
    # Given: 1,000 PDFs in a folder of the inbox, an emulator processing each in about two seconds
    # (some end failed or junk; uploads and processing slow enough to be in flight), two workers
    inbox = tmp_path / "inbox"
    names = _write_batch(inbox / "batch-7", BATCH_SIZE)
    project = emulator.seed_project(name="Batch 7")["id"]
    slow = ["Files_uploadFile", "Documents_processFileIntoDocument"]
    emulator.set_faults(
        new_s=0.3, processing_s=2.0, failure_rate=0.03, junk_rate=0.03, latency_ms=40, fault_operations=slow
    )
    env = {
        **redis_env,
        "HYPATOS_INBOX_DIR": str(inbox),
        "HYPATOS_POLL_INITIAL_S": "1",
        "HYPATOS_POLL_MAX_S": "4",
        "HYPATOS_CLAIM_LEASE_S": "6",
    }
    metrics_port = free_port()
    fleet.start(1, concurrency=CONCURRENCY, HYPATOS_METRICS_PORT=str(metrics_port), **env)
    fleet.start(1, concurrency=CONCURRENCY, **env)
    report = tmp_path / "report.jsonl"

    # When: submit-batch runs, and worker 0 is killed with SIGKILL while it calls the API, then restarted
    batch = _submit_batch({**fleet.env, **env}, inbox / "batch-7", project, report)
    wait_until(
        lambda: (
            emulator.counters()["operations"].get("Files_uploadFile", 0) >= 300
            and total(metrics_port, "hypatos_requests_in_flight") >= 8
        ),
        timeout_s=240,
        interval_s=0.05,
        what="worker 0 in the middle of the batch",
    )
    fleet.kill(0, signal.SIGKILL)
    fleet.processes[0].wait(timeout=10)
    fleet.start(1, concurrency=CONCURRENCY, wait=False, **env)
    stdout, stderr = batch.communicate(timeout=600)

    # Then: every file reached a processed state, and the report agrees with the emulator's record
    assert batch.returncode == 0, stdout + stderr[-3000:]
    assert f"{BATCH_SIZE} files, {BATCH_SIZE} succeeded, 1 skipped" in stdout
    lines = _report(report)
    assert lines["notes.txt"]["status"] == "skipped"
    files, documents = _emulator_record(emulator)
    filename_of = {f["id"]: f["filename"] for f in files}
    document_of = {d["id"]: d for d in documents}
    for name in names:
        line = lines[name]
        document = document_of[line["document_id"]]
        assert line["status"] == "succeeded", line
        assert (document["fileId"], document["projectId"]) == (line["file_id"], project), line
        assert document["state"] == line["state"], line
        assert filename_of[line["file_id"]] == name, line

    # exactly one document per input file
    documents_per_name = Counter(filename_of[d["fileId"]] for d in documents)
    assert documents_per_name == dict.fromkeys(names, 1)
    # a second upload of a file only where its first was cut off mid-flight (the journey saw it begin)
    uploads_per_name = Counter(f["filename"] for f in files)
    for name in names:
        assert 1 <= uploads_per_name[name] <= lines[name]["uploads"], lines[name]
    assert sum(uploads_per_name.values()) - BATCH_SIZE <= CONCURRENCY
    states = Counter(line["state"] for line in lines.values() if line["status"] == "succeeded")
    assert states["failed"] > 0 and states["junk"] > 0 and states["doneAutomatically"] > 0
    counters = emulator.counters()["operations"]
    beyond = (
        api_calls(emulator.counters())
        - counters["Files_uploadFile"]
        - counters["Documents_processFileIntoDocument"]
    )
    assert beyond / BATCH_SIZE < 4, counters
    with report.with_suffix(".csv").open() as table:
        assert len(list(csv.DictReader(table))) == BATCH_SIZE + 1

    # And: running the batch again skips every file (stored results replayed, nothing called)
    calls_before = api_calls(emulator.counters())
    again = _submit_batch({**fleet.env, **env}, inbox / "batch-7", project, tmp_path / "again.jsonl")
    stdout, stderr = again.communicate(timeout=300)
    assert again.returncode == 0, stdout + stderr[-3000:]
    rerun = _report(tmp_path / "again.jsonl")
    assert all(
        rerun[name]["replayed"] and rerun[name]["document_id"] == lines[name]["document_id"] for name in names
    )
    assert api_calls(emulator.counters()) == calls_before


@pytest.mark.timeout(300)
def test_given_an_interrupted_batch_when_it_is_run_again_then_it_resumes_without_uploading_again(
    fleet: WorkerFleet, amqp: AmqpTestClient, emulator: Any, redis_env: dict[str, str], tmp_path: Path
) -> None:
    # Given: five documents that take long to process, a worker, and submit-batch interrupted (Ctrl-C)
    # once every document was requested
    names = _write_batch(tmp_path / "batch", 5)
    project = emulator.seed_project(name="Interrupted")["id"]
    emulator.set_faults(new_s=0.1, processing_s=3600)
    env = {**redis_env, "HYPATOS_POLL_INITIAL_S": "1", "HYPATOS_POLL_MAX_S": "2"}
    fleet.start(1, **env)
    first = _submit_batch({**fleet.env, **env}, tmp_path / "batch", project, tmp_path / "first.jsonl")
    wait_until(
        lambda: emulator.counters()["operations"].get("Documents_processFileIntoDocument", 0) >= 5,
        timeout_s=60,
        what="every document requested",
    )
    first.send_signal(signal.SIGINT)
    stdout, _ = first.communicate(timeout=60)
    assert first.returncode == 130, stdout
    assert "run the same command again" in stdout
    assert {line["status"] for name, line in _report(tmp_path / "first.jsonl").items() if name in names} == {
        "pending"
    }

    # When: the documents finish meanwhile, and the same command runs again (files sent as base64)
    for document in _emulator_record(emulator)[1]:
        emulator.set_document_state(document["id"], "doneAutomatically")
    again = _submit_batch({**fleet.env, **env}, tmp_path / "batch", project, tmp_path / "again.jsonl")
    stdout, stderr = again.communicate(timeout=120)

    # Then: every document is reported done, and nothing was uploaded or processed twice
    assert again.returncode == 0, stdout + stderr[-3000:]
    lines = _report(tmp_path / "again.jsonl")
    assert {lines[name]["state"] for name in names} == {"doneAutomatically"}
    operations = emulator.counters()["operations"]
    assert operations["Files_uploadFile"] == 5 and operations["Documents_processFileIntoDocument"] == 5
