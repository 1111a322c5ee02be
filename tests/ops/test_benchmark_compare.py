"""The side-by-side benchmark runs end to end in its quick mode and reports every scenario.

No timing is asserted here (the machine is shared): only that each scenario produced numbers and the
report was written.  The numbers themselves are the record in docs/PERFORMANCE.md.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]

THROUGHPUT = [
    "aiohttp_0ms",
    "aiohttp_200ms",
    "service_1p_0ms",
    "service_2p_0ms",
    "service_3p_0ms",
    "service_1p_200ms",
    "celery_prefork_0ms",
    "celery_prefork_200ms",
    "celery_threads64_0ms",
    "celery_threads64_200ms",
    "celery_threads256_200ms",
    "celery_noop_0ms",
]
LOW_LOAD = [
    "low_load_service",
    "low_load_aiohttp",
    "low_load_celery_prefork",
    "low_load_celery_threads64",
    "low_load_celery_noop",
]
HEADINGS = [
    "## Machine",
    "## Targets",
    "## Throughput at 0 ms API latency",
    "## Throughput at 200 ms API latency",
    "## Latency at low load",
    "## Growth with processes",
    "## Memory with requests queued",
    "## Where the time goes",
]


def test_given_the_quick_mode_then_every_scenario_reports_numbers_and_the_report_is_written(
    broker_url: str, tmp_path: Path
) -> None:
    # Given: a report path outside the repository
    report = tmp_path / "PERFORMANCE.md"
    # When: the benchmark command runs in its quick mode
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "ops.benchmarks.compare",
            "--quick",
            "--broker-url",
            broker_url,
            "--output",
            str(report),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout)
    scenarios = summary["scenarios"]
    # Then: every throughput scenario answered all its requests and has a rate, latencies and CPU
    for key in THROUGHPUT:
        row = scenarios[key]
        assert row["failed"] == 0, key
        assert row["rate_per_s"] > 0, key
        assert row["latency_ms"]["p50"] is not None and row["latency_ms"]["p99"] is not None, key
        assert row["token_requests"] >= 0, key
        assert row["cpu_ms_per_request"]["system"] is not None, key
        assert row["peak_rss_mb"] > 0, key
    # And: every low-load scenario has its added latency
    for key in LOW_LOAD:
        assert scenarios[key]["failed"] == 0, key
        assert scenarios[key]["added_latency_ms"]["p50"] is not None, key
    # And: the queued-requests run drained everything and has the worker's peak memory
    queued = scenarios["service_queued_memory"]
    assert queued["failed"] == 0 and queued["peak_rss_mb"] > 0
    # And: every target is evaluated, and the report holds the command, the machine and the tables
    assert all(target["measured"] is not None for target in summary["targets"])
    text = report.read_text(encoding="utf-8")
    assert summary["command"] in text
    for heading in HEADINGS:
        assert heading in text
