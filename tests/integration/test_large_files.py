"""Large files stream through the worker: its memory does not grow with the file's size."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from tests.support.amqp import AmqpTestClient
from tests.support.processes import WorkerFleet

pytestmark = pytest.mark.integration

SIZE = 200 * 1024 * 1024
MAX_GROWTH_BYTES = 30 * 1024 * 1024


def _memory_kib(pid: int, field: str) -> int:
    """VmRSS (now) or VmHWM (peak) of a process, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"{field} not in /proc/{pid}/status")


def _write_pdf(path: Path, size: int) -> str:
    """A file of `size` bytes that starts like a PDF; returns its sha256."""
    digest = hashlib.sha256()
    block = bytes(range(256)) * 4096  # 1 MiB
    with path.open("wb") as handle:
        head = b"%PDF-1.7\n"
        handle.write(head)
        digest.update(head)
        written = len(head)
        while written < size:
            chunk = block[: min(len(block), size - written)]
            handle.write(chunk)
            digest.update(chunk)
            written += len(chunk)
    return digest.hexdigest()


def _round_trip(amqp: AmqpTestClient, queues: dict[str, str], name: str, tag: str) -> dict[str, Any]:
    """Upload `name` from the inbox, download it to the outbox; returns the download result."""
    upload = {"id": f"up-{tag}", "connection": "main", "operation": "uploadFile", "file": {"path": name}}
    amqp.publish(queues["HYPATOS_REQUEST_QUEUE"], upload)
    [(_, uploaded)] = amqp.collect(queues["HYPATOS_RESULT_QUEUE"], 1, timeout_s=300)
    assert uploaded["status"] == "succeeded", uploaded
    amqp.publish(
        queues["HYPATOS_REQUEST_QUEUE"],
        {
            "id": f"down-{tag}",
            "connection": "main",
            "operation": "retrieveFile",
            "params": {"id": uploaded["data"]["id"]},
        },
    )
    [(_, downloaded)] = amqp.collect(queues["HYPATOS_RESULT_QUEUE"], 1, timeout_s=300)
    assert downloaded["status"] == "succeeded", downloaded
    return downloaded["data"]


def test_given_a_200_mb_file_then_upload_and_download_stream_with_worker_memory_growth_under_30_mb(
    fleet: WorkerFleet, amqp: AmqpTestClient, emulator: Any, queue_names: dict[str, str], tmp_path: Path
) -> None:
    # Given: an inbox with a small and a 200 MB file, and a worker with inbox and outbox folders
    inbox, outbox = tmp_path / "inbox", tmp_path / "outbox"
    inbox.mkdir()
    _write_pdf(inbox / "small.pdf", 64 * 1024)
    big_sha256 = _write_pdf(inbox / "big.pdf", SIZE)
    fleet.start(1, HYPATOS_INBOX_DIR=str(inbox), HYPATOS_OUTBOX_DIR=str(outbox))
    pid = fleet.processes[0].pid
    # Warm up every code path with the small file, then take the baseline.
    _round_trip(amqp, queue_names, "small.pdf", "small")
    baseline_kib = _memory_kib(pid, "VmRSS")
    # When: the 200 MB file goes up and comes back down
    data = _round_trip(amqp, queue_names, "big.pdf", "big")
    # Then: the bytes are intact and the worker's peak memory barely moved
    assert data["size"] == SIZE and data["sha256"] == big_sha256
    assert (outbox / data["path"]).stat().st_size == SIZE
    growth = (_memory_kib(pid, "VmHWM") - baseline_kib) * 1024
    print(f"worker peak memory growth for a 200 MiB round trip: {growth / 2**20:.1f} MiB")
    assert growth < MAX_GROWTH_BYTES, f"peak memory grew by {growth / 2**20:.1f} MiB"
