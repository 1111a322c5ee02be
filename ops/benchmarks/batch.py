"""A batch of documents through one worker host: documents per minute, peak memory, API calls per document.

Generates `--documents` distinct PDFs in an inbox folder, starts `--workers` worker processes (one
host, sharing Redis) and the emulator (each document processed in `--processing-s`, some ending
``failed`` or ``junk``), and runs ``hypatos-worker submit-batch`` as a pipeline would, timed from its
start to its exit.  Then it reads the emulator's counters for the API calls per document (in all, and
beyond the upload and the processing request) and each worker's peak resident memory (``VmHWM``).

    .venv/bin/python ops/benchmarks/batch.py --documents 10000

Needs RabbitMQ and Redis (``--broker-url``, ``--redis-url``, default the local ones); not part of the
test suite.  Prints one JSON object.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import click
import redis

from emulator.pdf import text_pdf
from emulator.testing import EmulatorServer


def _queues() -> dict[str, str]:
    prefix = f"bench-batch-{uuid.uuid4().hex[:8]}"
    return {
        name: f"{prefix}.{kind}"
        for name, kind in (
            ("HYPATOS_REQUEST_QUEUE", "requests"),
            ("HYPATOS_RESULT_QUEUE", "results"),
            ("HYPATOS_DEAD_LETTER_QUEUE", "dead"),
            ("HYPATOS_TASK_QUEUE", "tasks"),
        )
    }


def _write_documents(folder: Path, count: int) -> None:
    folder.mkdir(parents=True)
    for index in range(count):
        (folder / f"doc-{index:06d}.pdf").write_bytes(text_pdf([f"INVOICE {index:08d}", "Benchmark GmbH"]))


def _peak_rss_mib(pid: int) -> float:
    """The process's peak resident memory so far (Linux ``VmHWM``), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _env(emulator: EmulatorServer, args: dict[str, Any], tmp: Path, prefix: str) -> dict[str, str]:
    connections = tmp / "connections.toml"
    connections.write_text(
        f'[connections.bench]\nendpoint_url = "{emulator.base_url}"\n'
        f'client_id = "{emulator.client_id}"\nclient_secret = "{emulator.client_secret}"\n'
    )
    return {
        **os.environ,
        **args["queues"],
        "HYPATOS_BROKER_URL": args["broker_url"],
        "HYPATOS_REDIS_URL": args["redis_url"],
        "HYPATOS_REDIS_PREFIX": prefix,
        "HYPATOS_CONNECTIONS_FILE": str(connections),
        "HYPATOS_ALLOW_CUSTOM_ENDPOINTS": "1",
        "HYPATOS_INBOX_DIR": str(tmp / "inbox"),
        "HYPATOS_LOG_LEVEL": "WARNING",
        "HYPATOS_POLL_INITIAL_S": str(args["poll_initial_s"]),
        "HYPATOS_POLL_MAX_S": str(args["poll_max_s"]),
    }


def _run(emulator: EmulatorServer, args: dict[str, Any], tmp: Path) -> dict[str, Any]:
    prefix = f"bench-batch-{uuid.uuid4().hex[:8]}:"
    env = _env(emulator, args, tmp, prefix)
    project = emulator.seed_project(name="Benchmark")["id"]
    command = [sys.executable, "-m", "worker", "run", f"--concurrency={args['concurrency']}"]
    workers = [
        subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(args["workers"])
    ]
    try:
        time.sleep(5)  # the workers declare the queues and exchange before the batch publishes
        started = time.perf_counter()
        batch = subprocess.run(
            [
                sys.executable,
                "-m",
                "worker",
                "submit-batch",
                str(tmp / "inbox" / "batch"),
                "--connection",
                "bench",
                "--project",
                project,
                "--report",
                str(tmp / "report.jsonl"),
            ],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        elapsed_s = time.perf_counter() - started
        peaks = [round(_peak_rss_mib(w.pid), 1) for w in workers]
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.wait(60)
        client = redis.Redis.from_url(args["redis_url"])
        keys = list(client.scan_iter(match=f"{prefix}*"))
        for start in range(0, len(keys), 1000):
            client.delete(*keys[start : start + 1000])
    lines = [json.loads(line) for line in (tmp / "report.jsonl").read_text().splitlines()]
    return {
        "elapsed_s": elapsed_s,
        "peaks": peaks,
        "exit_code": batch.returncode,
        "summary": batch.stdout.strip(),
        "lines": lines,
    }


def _delete_queues(broker_url: str, queues: dict[str, str]) -> None:
    from kombu import Connection

    with Connection(broker_url) as connection:
        channel = connection.channel()
        for name in queues.values():
            try:
                channel.queue_delete(name)
            except Exception:
                channel = connection.channel()


@click.command()
@click.option("--documents", "count", default=10_000, show_default=True)
@click.option("--workers", default=os.cpu_count() or 1, show_default=True, help="Worker processes.")
@click.option("--concurrency", default=64, show_default=True, help="Requests in flight per worker.")
@click.option("--processing-s", default=3.0, show_default=True, help="Emulator: time to process a document.")
@click.option("--latency-ms", default=20.0, show_default=True, help="Emulator: latency of each API call.")
@click.option("--poll-initial-s", default=5.0, show_default=True)
@click.option("--poll-max-s", default=30.0, show_default=True)
@click.option("--broker-url", default="amqp://guest:guest@127.0.0.1:5672//", show_default=True)
@click.option("--redis-url", default="redis://127.0.0.1:6379/0", show_default=True)
def main(
    count: int,
    workers: int,
    concurrency: int,
    processing_s: float,
    latency_ms: float,
    poll_initial_s: float,
    poll_max_s: float,
    broker_url: str,
    redis_url: str,
) -> None:
    """Push `--documents` documents through submit-batch and print what it cost."""
    args = {
        "workers": workers,
        "concurrency": concurrency,
        "broker_url": broker_url,
        "redis_url": redis_url,
        "poll_initial_s": poll_initial_s,
        "poll_max_s": poll_max_s,
        "queues": _queues(),
    }
    settings = {
        "new_s": 0.5,
        "processing_s": processing_s,
        "failure_rate": 0.02,
        "junk_rate": 0.02,
        "latency_ms": latency_ms,
        "log_size": 1000,
    }
    with EmulatorServer(**settings) as emulator, tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        _write_documents(tmp / "inbox" / "batch", count)
        try:
            run = _run(emulator, args, tmp)
        finally:
            _delete_queues(broker_url, args["queues"])
        operations = {k: v for k, v in emulator.counters()["operations"].items() if "Authorization" not in k}
    calls = sum(operations.values())
    beyond = (
        calls - operations.get("Files_uploadFile", 0) - operations.get("Documents_processFileIntoDocument", 0)
    )
    report = {
        "documents": count,
        "workers": workers,
        "concurrency_per_worker": concurrency,
        "processing_s": processing_s,
        "latency_ms": latency_ms,
        "elapsed_s": round(run["elapsed_s"], 1),
        "documents_per_minute": round(count / run["elapsed_s"] * 60),
        "peak_worker_rss_mib": max(run["peaks"]),
        "peak_worker_rss_mib_each": run["peaks"],
        "api_calls_per_document": round(calls / count, 3),
        "api_calls_per_document_beyond_upload_and_process": round(beyond / count, 3),
        "api_calls": operations,
        "states": dict(Counter(line.get("state") or line["status"] for line in run["lines"])),
        "exit_code": run["exit_code"],
        "summary": run["summary"],
    }
    click.echo(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
