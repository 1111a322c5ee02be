"""The side-by-side benchmark: the service against plain aiohttp and naive Celery peers, in one run.

    .venv/bin/python -m ops.benchmarks.compare                 # full run, writes docs/PERFORMANCE.md
    .venv/bin/python -m ops.benchmarks.compare --quick --output /tmp/perf.md   # a check that it runs

Everything runs against the emulator in a process of its own, over real HTTP, and a real RabbitMQ
(``--broker-url``, default the local one).  Systems under test, each started as its user would:

- the service: ``python -m worker run`` processes (default settings except concurrency);
- plain aiohttp: one process, a semaphore of the same in-flight count, a bearer token;
- naive Celery peers (`ops.benchmarks.peers`): ``requests`` with a cached token on the prefork pool
  (2 processes) and the threads pool (64, and 256 at 200 ms); no-op tasks on 8 threads.

Each measurement: the system runs, the load generator (`ops.benchmarks.load`, a process of its own)
sends a warm-up batch as large as the system's in-flight count, the CPU clocks are read, the whole
measured batch is submitted at once, the clocks are read again.  Rate = requests / (last completion
- first submission); a completion is the result message (the service's result queue, Celery's
``rpc://`` reply) or the HTTP answer (aiohttp).  The report's "Method" section says the rest.

Prints a JSON summary on stdout (progress on stderr) and writes the Markdown report.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click

from ops.benchmarks import procstat
from ops.benchmarks.report import evaluate_targets, render
from ops.benchmarks.systems import (
    ROOT,
    Broker,
    CeleryPeer,
    EmulatorProcess,
    Service,
    run_has_processes_option,
)

#: Documents seeded in the emulator; requests cycle through them.
DOCUMENTS = 100
#: Longest a load generator run may wait for its completions.
LOAD_TIMEOUT_S = 600


@dataclass(frozen=True)
class Sizes:
    """How many requests each kind of run sends."""

    batch: int
    #: Measured batches per scenario; the fastest is reported (the least disturbed on a shared machine).
    repeat: int
    low_load: int
    queued: int
    #: The prefork peer at 200 ms does 2 / 0.2 s = 10 requests/s by construction: a short batch.
    slow_batch: int

    @classmethod
    def for_run(cls, requests: int, repeat: int, quick: bool) -> Sizes:
        if quick:
            return cls(batch=min(requests, 150), repeat=1, low_load=20, queued=300, slow_batch=20)
        return cls(batch=requests, repeat=repeat, low_load=300, queued=10_000, slow_batch=100)


@dataclass(frozen=True)
class Load:
    """What one measured batch is sent to and how hard."""

    spec: dict[str, Any]
    pids: list[int]
    processes: int
    in_flight: int
    latency_ms: float
    tokens_before: int
    count: int | None = None


@dataclass
class Bench:
    """What every measurement needs: the emulator, the broker, the documents and where logs go."""

    emulator: EmulatorProcess
    broker: Broker
    documents: list[str]
    log_dir: Path
    sizes: Sizes
    rabbit_pid: int | None
    results: dict[str, dict[str, Any]] = field(default_factory=dict)

    def load(
        self, spec: dict[str, Any], *, around: Callable[[], dict[str, float]] | None = None
    ) -> list[dict[str, Any]]:
        """Run the load generator in its own process; one JSON summary per measured batch.  With
        ``warmup`` in `spec`, `around` is called before and after each batch and its two values are
        kept in the summary (``before``, ``after``)."""
        spec = {
            "broker_url": self.broker.url,
            "documents": self.documents,
            "timeout_s": LOAD_TIMEOUT_S,
            "id_prefix": uuid.uuid4().hex[:10],
            **spec,
        }
        errors = self.log_dir / f"load-{spec['id_prefix']}.log"
        command = [sys.executable, "-m", "ops.benchmarks.load", json.dumps(spec)]
        runs: list[dict[str, Any]] = []
        with (
            errors.open("w") as stderr,
            subprocess.Popen(
                command, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr, text=True
            ) as process,
        ):
            assert process.stdin is not None and process.stdout is not None
            try:
                for _ in range(spec.get("repeat", 1) if spec.get("warmup") else 0):
                    if process.stdout.readline().strip() != "warm":
                        break  # it failed: its status and log say why
                    before = around() if around else {}
                    process.stdin.write("go\n")
                    process.stdin.flush()
                    line = process.stdout.readline()
                    if not line:
                        break
                    runs.append({**json.loads(line), "before": before, "after": around() if around else {}})
                stdout, _ = process.communicate(timeout=LOAD_TIMEOUT_S + 60)
            except BaseException:  # interrupted: do not wait for it on the way out
                process.kill()
                raise
        if process.returncode != 0:
            raise RuntimeError(f"load generator failed: {errors.read_text()[-2000:]}")
        return runs or [json.loads(line) for line in stdout.strip().splitlines()]

    def cpu(self, pids: list[int]) -> dict[str, float]:
        """CPU seconds so far of the measured processes, the broker, the emulator and the machine."""
        machine = procstat.MachineCpu.read()
        return {
            "system": procstat.tree_cpu_s(pids),
            "rabbitmq": procstat.process_cpu_s(self.rabbit_pid) if self.rabbit_pid else 0.0,
            "emulator": procstat.process_cpu_s(self.emulator.pid),
            "machine_busy": machine.busy_s,
            "machine_total": machine.total_s,
        }

    def measure(self, key: str, label: str, load: Load) -> dict[str, Any]:
        """Warm up, then `repeat` measured batches; records and returns the row of the fastest."""
        count = load.count or self.sizes.batch
        self.emulator.set_latency(load.latency_ms)
        spec = {
            **load.spec,
            "mode": "batch",
            "count": count,
            "warmup": min(load.in_flight, count),
            "repeat": self.sizes.repeat,
        }
        runs = self.load(spec, around=lambda: self.cpu(load.pids))
        rows = [self._row(label, load, count, run) for run in runs]
        row = max(rows, key=lambda r: r["rate_per_s"] or 0.0)
        row["rates_per_s_all"] = [r["rate_per_s"] for r in rows]
        row["failed"] = max(r["failed"] for r in rows)
        self.record(key, row)
        return row

    def _row(self, label: str, load: Load, count: int, run: dict[str, Any]) -> dict[str, Any]:
        """The report's row for one measured batch."""
        used = {name: run["after"][name] - run["before"][name] for name in run["after"]}
        client_is_system = load.spec["system"] == "aiohttp"  # the client is the system measured
        system_cpu = run["client_cpu_s"] if client_is_system else used["system"]
        client_cpu = None if client_is_system else run["client_cpu_s"]
        measured = system_cpu + used["rabbitmq"] + used["emulator"] + (client_cpu or 0.0)
        completed = run["completed"] or 1

        def per_request_ms(seconds: float | None) -> float | None:
            return None if seconds is None else round(seconds / completed * 1000, 3)

        return {
            "label": label,
            "system": load.spec["system"],
            "processes": load.processes,
            "in_flight": load.in_flight,
            "latency_ms_api": load.latency_ms,
            "requests": count,
            "completed": run["completed"],
            "failed": run["failed"] + count - run["completed"],
            "rate_per_s": round(count / run["elapsed_s"], 1) if run["elapsed_s"] else None,
            "elapsed_s": run["elapsed_s"],
            "publish_s": run["publish_s"],
            "latency_ms": run["latency_ms"],
            "token_requests": self.emulator.token_requests() - load.tokens_before,
            "cpu_ms_per_request": {
                "system": per_request_ms(system_cpu),
                "rabbitmq": per_request_ms(used["rabbitmq"] if self.rabbit_pid else None),
                "emulator": per_request_ms(used["emulator"]),
                "client": per_request_ms(client_cpu),
            },
            "machine_busy_pct": _pct(used["machine_busy"], used["machine_total"]),
            "other_busy_pct": _pct(max(0.0, used["machine_busy"] - measured), used["machine_total"]),
            "peak_rss_mb": run["client_peak_rss_mb"] if client_is_system else _peak_rss(load.pids),
        }

    def low_load(self, key: str, label: str, spec: dict[str, Any]) -> None:
        """One request at a time at 0 ms API latency: latency from submission to completion."""
        self.emulator.set_latency(0)
        count = self.sizes.low_load
        run = self.load({**spec, "mode": "sequential", "count": count})[0]
        self.record(
            key,
            {
                "label": label,
                "system": spec["system"],
                "requests": count,
                "completed": run["completed"],
                "failed": run["failed"] + count - run["completed"],
                "latency_ms_api": 0.0,
                "latency_ms": run["latency_ms"],
                # Completion - submission - the API's configured latency, which is 0 here.
                "added_latency_ms": run["latency_ms"],
            },
        )

    def record(self, key: str, row: dict[str, Any]) -> None:
        """Keep a scenario's row and show progress on stderr."""
        self.results[key] = row
        rate = row.get("rate_per_s")
        shown = "" if rate is None else f"{rate:>8.1f}/s"
        latency = row["latency_ms"]
        click.echo(
            f"{time.strftime('%H:%M:%S')} {key:<28} {shown}  p50 {latency['p50']} ms  "
            f"p99 {latency['p99']} ms  failed {row['failed']}",
            err=True,
        )


def _pct(part: float, whole: float) -> float | None:
    return round(100 * part / whole, 1) if whole > 0 else None


def _peak_rss(pids: list[int]) -> float | None:
    peaks = procstat.tree_peak_rss_mb(pids)
    return round(max(peaks), 1) if peaks else None


def _service_spec(service: Service) -> dict[str, Any]:
    return {"system": "service", "request_queue": service.request_queue, "result_queue": service.result_queue}


def _aiohttp_spec(bench: Bench, in_flight: int) -> dict[str, Any]:
    emulator = bench.emulator
    return {
        "system": "aiohttp",
        "api_url": emulator.api_url,
        "token_url": emulator.token_url,
        "client_id": emulator.client_id,
        "client_secret": emulator.client_secret,
        "in_flight": in_flight,
    }


def run_aiohttp(bench: Bench) -> None:
    """Plain aiohttp: 32 in flight at 0 ms (as one service process), 256 at 200 ms; low load."""
    for latency_ms, in_flight in ((0, 32), (200, 256)):
        load = Load(
            _aiohttp_spec(bench, in_flight),
            pids=[],
            processes=1,
            in_flight=in_flight,
            latency_ms=latency_ms,
            tokens_before=bench.emulator.token_requests(),
        )
        bench.measure(f"aiohttp_{latency_ms}ms", "plain aiohttp", load)
        if latency_ms == 0:
            bench.low_load("low_load_aiohttp", "plain aiohttp", _aiohttp_spec(bench, 1))


def run_service_growth(bench: Bench, concurrency: int = 32) -> None:
    """The service at 0 ms with 1, 2 and 3 processes (32 in flight each), and at low load."""
    service = Service(bench.broker, bench.emulator, bench.log_dir, concurrency=concurrency)
    try:
        for processes in (1, 2, 3):
            tokens = bench.emulator.token_requests()
            if processes > 1 and run_has_processes_option():  # a fresh ``run --processes N``
                service.stop()
                service = Service(bench.broker, bench.emulator, bench.log_dir, concurrency=concurrency)
                service.start(processes)
            else:  # one more ``run`` on the same queue
                service.start(1)
            load = Load(
                _service_spec(service),
                pids=service.pids,
                processes=processes,
                in_flight=concurrency * processes,
                latency_ms=0,
                tokens_before=tokens,
            )
            bench.measure(f"service_{processes}p_0ms", "this service", load)
            if processes == 1:
                bench.low_load("low_load_service", "this service", _service_spec(service))
    finally:
        service.stop()


def run_service_200ms(bench: Bench) -> None:
    """One service process, 256 in flight, at 200 ms (default settings but the concurrency)."""
    variants: list[tuple[str, str, dict[str, str]]] = [("service_1p_200ms", "this service", {})]
    for key, label, env in variants:
        tokens = bench.emulator.token_requests()
        service = Service(bench.broker, bench.emulator, bench.log_dir, concurrency=256, env=env)
        try:
            service.start(1)
            load = Load(
                _service_spec(service),
                pids=service.pids,
                processes=1,
                in_flight=256,
                latency_ms=200,
                tokens_before=tokens,
            )
            bench.measure(key, label, load)
        finally:
            service.stop()


def run_service_queued(bench: Bench) -> None:
    """Memory: requests queued before one worker (64 in flight) starts; its peak RSS while it drains."""
    bench.emulator.set_latency(0)
    count = bench.sizes.queued
    service = Service(bench.broker, bench.emulator, bench.log_dir, concurrency=64)
    try:
        service.declare()
        spec = {**_service_spec(service), "count": count, "id_prefix": uuid.uuid4().hex[:10]}
        bench.load({**spec, "mode": "publish"})
        started = time.perf_counter()
        service.start(1)
        run = bench.load({**spec, "mode": "collect"})[0]
        elapsed = time.perf_counter() - started
        row = {
            "label": "this service",
            "system": "service",
            "processes": 1,
            "in_flight": 64,
            "requests": count,
            "completed": run["completed"],
            "failed": run["failed"] + count - run["completed"],
            "drain_s": round(elapsed, 2),
            "rate_per_s": round(count / elapsed, 1),
            "peak_rss_mb": _peak_rss(service.pids),
            "latency_ms": {"p50": None, "p99": None},
        }
        bench.record("service_queued_memory", row)
    finally:
        service.stop()


@dataclass(frozen=True)
class Peer:
    """A Celery peer and the latencies it is measured at."""

    name: str
    label: str
    pool: str
    concurrency: int
    task: str
    latencies_ms: tuple[float, ...]
    low_load: bool


PEERS = [
    Peer("celery_prefork", "naive Celery, prefork", "prefork", 2, "bench.fetch_document", (0, 200), True),
    Peer("celery_threads64", "naive Celery, threads", "threads", 64, "bench.fetch_document", (0, 200), True),
    Peer("celery_threads256", "naive Celery, threads", "threads", 256, "bench.fetch_document", (200,), False),
    Peer("celery_noop", "Celery no-op tasks", "threads", 8, "bench.noop", (0,), True),
]


def run_peer(bench: Bench, peer: Peer) -> None:
    """One Celery peer at each of its latencies (200 ms with the short batch for prefork)."""
    tokens = bench.emulator.token_requests()
    worker = CeleryPeer(
        bench.broker, bench.emulator, bench.log_dir, pool=peer.pool, concurrency=peer.concurrency
    )
    try:
        worker.start()
        spec = {"system": "celery", "queue": worker.queue, "task": peer.task}
        processes = peer.concurrency if peer.pool == "prefork" else 1
        for latency_ms in peer.latencies_ms:
            slow = peer.pool == "prefork" and latency_ms > 0
            load = Load(
                spec,
                pids=worker.pids,
                processes=processes,
                in_flight=peer.concurrency,
                latency_ms=latency_ms,
                tokens_before=tokens,
                count=bench.sizes.slow_batch if slow else None,
            )
            bench.measure(f"{peer.name}_{latency_ms:g}ms", peer.label, load)
            if peer.low_load and latency_ms == 0:
                bench.low_load(f"low_load_{peer.name}", peer.label, spec)
    finally:
        worker.stop()


STEPS: list[tuple[str, Callable[[Bench], None]]] = [
    ("plain aiohttp", run_aiohttp),
    ("service, 1-3 processes, 0 ms", run_service_growth),
    ("service, 256 in flight, 200 ms", run_service_200ms),
    *((f"{peer.label} ({peer.concurrency})", partial(run_peer, peer=peer)) for peer in PEERS),
    ("service, requests queued", run_service_queued),
]


def machine_info(broker: Broker) -> dict[str, Any]:
    """What the run ran on."""
    return {
        "cpu": procstat.cpu_model(),
        "cores": os.cpu_count(),
        "python": procstat.python_version(),
        **broker.versions(),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "load_average_before": procstat.load_average()[0],
    }


def run_all(count: int, repeat: int, quick: bool, broker_url: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Every step in one go; the machine description and the rows by scenario."""
    with ExitStack() as stack:
        log_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="perf-")))
        broker = Broker(broker_url)
        emulator = EmulatorProcess(log_dir)
        stack.callback(emulator.stop)
        machine = machine_info(broker)
        bench = Bench(
            emulator=emulator,
            broker=broker,
            documents=emulator.seed(DOCUMENTS),
            log_dir=log_dir,
            sizes=Sizes.for_run(count, repeat, quick),
            rabbit_pid=procstat.broker_pid(urlsplit(broker_url).port or 5672),
        )
        for name, step in STEPS:
            click.echo(f"-- {name}", err=True)
            step(bench)
        machine["load_average_after"] = procstat.load_average()[0]
    return machine, bench.results


@click.command()
@click.option(
    "--requests",
    "count",
    type=click.IntRange(10),
    default=3000,
    show_default=True,
    help="Requests per measured batch.",
)
@click.option(
    "--repeat",
    type=click.IntRange(1),
    default=3,
    show_default=True,
    help="Measured batches per scenario; the fastest is reported.",
)
@click.option("--quick", is_flag=True, help="Small batches: a check that every scenario runs.")
@click.option("--broker-url", default="amqp://guest:guest@127.0.0.1:5672//", show_default=True)
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=ROOT / "docs" / "PERFORMANCE.md",
    help="Where to write the report.",
)
def main(count: int, repeat: int, quick: bool, broker_url: str, output: Path) -> None:
    """Run every scenario in one go, print a JSON summary and write the Markdown report."""
    command = shlex.join([".venv/bin/python", "-m", "ops.benchmarks.compare", *sys.argv[1:]])
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwinds, so started processes are stopped
    started = time.monotonic()
    machine, scenarios = run_all(count, repeat, quick, broker_url)
    summary: dict[str, Any] = {
        "command": command,
        "quick": quick,
        "repeat": 1 if quick else repeat,
        "machine": machine,
        "duration_s": round(time.monotonic() - started, 1),
        "processes_option": {
            "cli": run_has_processes_option(),
            "readme": "--processes" in (ROOT / "README.md").read_text(encoding="utf-8"),
        },
        "scenarios": scenarios,
    }
    summary["targets"] = evaluate_targets(summary)
    previous = output.read_text(encoding="utf-8") if output.exists() else ""
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(render(summary, previous), encoding="utf-8")
    click.echo(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
