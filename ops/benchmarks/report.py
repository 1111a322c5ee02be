"""The targets of the performance issue, checked against one run, and the Markdown report of that run.

`render` writes ``docs/PERFORMANCE.md`` from the JSON summary of `ops.benchmarks.compare`.  The
section "Where the time goes" is written by people (from profiles), so a new run keeps the text it
finds there.
"""

from __future__ import annotations

import itertools
from typing import Any

#: Ratio targets: (what, this service's scenario, the peer's scenario, the least ratio).
RATIO_TARGETS = [
    (
        "0 ms: service (2 processes) / naive Celery prefork (2 processes)",
        "service_2p_0ms",
        "celery_prefork_0ms",
        2.0,
    ),
    (
        "0 ms: service (1 process) / Celery no-op tasks (1 process, 8 threads)",
        "service_1p_0ms",
        "celery_noop_0ms",
        0.6,
    ),
    (
        "200 ms, 256 in flight: service (1 process) / naive Celery threads (64)",
        "service_1p_200ms",
        "celery_threads64_200ms",
        3.0,
    ),
    (
        "200 ms, 256 in flight: service (1 process) / plain aiohttp (256)",
        "service_1p_200ms",
        "aiohttp_200ms",
        0.6,
    ),
]
ADDED_LATENCY_P50_MAX_MS = 5.0
PEAK_RSS_MAX_MB = 200.0
TIME_SECTION = "## Where the time goes"
TIME_PLACEHOLDER = (
    "_To be completed from profiles of the worker process (what its CPU per request is spent on)._"
)


def _target(what: str, goal: str, measured: Any, unit: str, met: bool | None) -> dict[str, Any]:
    return {"target": what, "goal": goal, "measured": measured, "unit": unit, "met": met}


def evaluate_targets(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target of the issue with the measured value and whether it was met (None: not measured)."""
    scenarios = summary["scenarios"]
    targets = []
    for what, ours, theirs, least in RATIO_TARGETS:
        mine, peer = _rate(scenarios, ours), _rate(scenarios, theirs)
        ratio = round(mine / peer, 2) if mine and peer else None
        targets.append(_target(what, f">= {least:g}x", ratio, "x", None if ratio is None else ratio >= least))
    low = scenarios.get("low_load_service", {}).get("added_latency_ms", {}).get("p50")
    targets.append(
        _target(
            "Added latency at low load, p50 (service)",
            f"< {ADDED_LATENCY_P50_MAX_MS:g} ms",
            low,
            "ms",
            None if low is None else low < ADDED_LATENCY_P50_MAX_MS,
        )
    )
    queued = scenarios.get("service_queued_memory", {})
    rss = queued.get("peak_rss_mb")
    targets.append(
        _target(
            f"Worker peak memory with {queued.get('requests')} requests queued",
            f"< {PEAK_RSS_MAX_MB:g} MB",
            rss,
            "MB",
            None if rss is None else rss < PEAK_RSS_MAX_MB,
        )
    )
    option = summary["processes_option"]
    shown = {(True, True): "yes", (True, False): "in the CLI, not in the README"}.get(
        (option["cli"], option["readme"]), "no"
    )
    targets.append(
        _target(
            "One process per core with one documented command (`hypatos-worker run --processes auto`)",
            "documented",
            shown,
            "",
            option["cli"] and option["readme"],
        )
    )
    return targets


def _rate(scenarios: dict[str, Any], key: str) -> float | None:
    row = scenarios.get(key)
    return row.get("rate_per_s") if row and not row.get("failed") else None


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _met(met: bool | None) -> str:
    return {True: "met", False: "**missed**", None: "not measured"}[met]


THROUGHPUT_HEADER = (
    "| system | processes | in flight | requests | submitted in s | rate (req/s) | all runs | p50 ms "
    "| p99 ms | token requests | CPU ms/req: system | RabbitMQ | emulator | load generator "
    "| peak RSS MB/process | machine busy % | of which others % |\n|---|" + "--:|" * 16
)


def _throughput_table(rows: list[dict[str, Any]]) -> str:
    lines = [THROUGHPUT_HEADER]
    for row in rows:
        cpu, latency = row["cpu_ms_per_request"], row["latency_ms"]
        failed = f" ({row['failed']} failed)" if row["failed"] else ""
        cells = [
            f"{row['label']}{failed}",
            row["processes"],
            row["in_flight"],
            row["requests"],
            _fmt(row["publish_s"], 2),
            _fmt(row["rate_per_s"]),
            " / ".join(_fmt(rate, 0) for rate in row.get("rates_per_s_all", [])),
            _fmt(latency["p50"]),
            _fmt(latency["p99"]),
            row["token_requests"],
            _fmt(cpu["system"], 2),
            _fmt(cpu["rabbitmq"], 2),
            _fmt(cpu["emulator"], 2),
            _fmt(cpu["client"], 2),
            _fmt(row["peak_rss_mb"]),
            _fmt(row["machine_busy_pct"]),
            _fmt(row["other_busy_pct"]),
        ]
        lines.append("| " + " | ".join(str(cell) for cell in cells) + " |")
    return "\n".join(lines)


def _share(row: dict[str, Any], part: str, cores: int) -> float | None:
    """Share of the machine's CPU (all cores) a part used during the row's batch."""
    value, rate = row["cpu_ms_per_request"].get(part), row.get("rate_per_s")
    return None if value is None or not rate else round(value * rate / 1000 / cores * 100, 1)


def _growth(scenarios: dict[str, Any], cores: int) -> str:
    rows = [scenarios[f"service_{n}p_0ms"] for n in (1, 2, 3) if f"service_{n}p_0ms" in scenarios]
    if not rows or not rows[0].get("rate_per_s"):
        return "Not measured."
    base = rows[0]["rate_per_s"]
    lines = [
        "| processes | rate (req/s) | x 1 process | service CPU % of machine | RabbitMQ % | emulator % "
        "| load generator % | machine busy % |",
        "|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['processes']} | {_fmt(row['rate_per_s'])} | {_fmt((row['rate_per_s'] or 0) / base, 2)} "
            f"| {_fmt(_share(row, 'system', cores))} | {_fmt(_share(row, 'rabbitmq', cores))} "
            f"| {_fmt(_share(row, 'emulator', cores))} | {_fmt(_share(row, 'client', cores))} "
            f"| {_fmt(row['machine_busy_pct'])} |"
        )
    steps = [
        f"{a['processes']} to {b['processes']} processes x{(b['rate_per_s'] or 0) / a['rate_per_s']:.2f}"
        for a, b in itertools.pairwise(rows)
        if a.get("rate_per_s")
    ]
    last = rows[-1]
    text = (
        f"\n\nRate growth: {', '.join(steps)}. At {last['processes']} processes the machine's {cores} cores "
        f"were {_fmt(last['machine_busy_pct'])} % busy: the service's processes used "
        f"{_fmt(_share(last, 'system', cores))} %, RabbitMQ {_fmt(_share(last, 'rabbitmq', cores))} %, the "
        f"emulator {_fmt(_share(last, 'emulator', cores))} % and the load generator "
        f"{_fmt(_share(last, 'client', cores))} % of the machine. Growth stops where the cores are "
        "used up; on this machine the service, the broker, the emulator and the load generator share them, "
        "so the CPU per request columns (service Python vs RabbitMQ) say which one a bigger machine "
        "would run out of first."
    )
    return "\n".join(lines) + text


def _low_load(scenarios: dict[str, Any]) -> str:
    lines = [
        "| system | requests | p50 ms | p99 ms | added p50 ms | added p99 ms |",
        "|---|--:|--:|--:|--:|--:|",
    ]
    for key in ("service", "aiohttp", "celery_prefork", "celery_threads64", "celery_noop"):
        row = scenarios.get(f"low_load_{key}")
        if row:
            failed = f" ({row['failed']} failed)" if row["failed"] else ""
            lines.append(
                f"| {row['label']}{failed} | {row['requests']} | {_fmt(row['latency_ms']['p50'], 2)} "
                f"| {_fmt(row['latency_ms']['p99'], 2)} | {_fmt(row['added_latency_ms']['p50'], 2)} "
                f"| {_fmt(row['added_latency_ms']['p99'], 2)} |"
            )
    return "\n".join(lines)


def _memory(scenarios: dict[str, Any]) -> str:
    row = scenarios.get("service_queued_memory")
    if not row:
        return "Not measured."
    failed = f", {row['failed']} failed" if row["failed"] else ""
    return (
        f"{row['requests']} requests published before one worker process started "
        f"(`--concurrency {row['in_flight']}`, 0 ms API latency): it drained them in {row['drain_s']} s "
        f"(including its start-up; {_fmt(row['rate_per_s'])} requests/s{failed}); its peak resident memory "
        f"(`VmHWM`) was **{_fmt(row['peak_rss_mb'])} MB**."
    )


def _targets(targets: list[dict[str, Any]]) -> str:
    lines = ["| target | goal | measured | |", "|---|---|--:|---|"]
    for target in targets:
        measured = target["measured"]
        shown = f"{_fmt(measured, 2)}{' ' + target['unit'] if target['unit'] else ''}"
        lines.append(f"| {target['target']} | {target['goal']} | {shown} | {_met(target['met'])} |")
    return "\n".join(lines)


def _processes_note(summary: dict[str, Any]) -> str:
    option = summary["processes_option"]
    if option["cli"]:
        readme = "" if option["readme"] else " (the README does not describe it yet)"
        return (
            f"`hypatos-worker run --processes auto` starts one worker process per core{readme}; "
            "`--processes N` starts N. Each keeps `HYPATOS_CONCURRENCY` requests in flight. The "
            "benchmark starts its 2 and 3 process runs that way."
        )
    return (
        "The measured version of `hypatos-worker run` starts one process; one per core means starting "
        "it once per core (or `docker compose up -d --scale worker=N`). The benchmark starts one `run` "
        "per process; it switches to `run --processes N` as soon as the command has that option."
    )


def _time_section(previous: str) -> str:
    if TIME_SECTION in previous:
        body = previous.split(TIME_SECTION, 1)[1].split("\n## ", 1)[0].strip()
        if body:
            return body
    return TIME_PLACEHOLDER


def kept_sections(previous: str) -> str:
    """The sections after "Where the time goes" in the previous file (other benchmarks' figures,
    written by people or other commands): a new run keeps them as they are."""
    if TIME_SECTION not in previous:
        return ""
    after = previous.split(TIME_SECTION, 1)[1]
    if "\n## " not in after:
        return ""
    return "\n## " + after.split("\n## ", 1)[1].rstrip() + "\n"


def _busy_note(machine: dict[str, Any]) -> str:
    before, after, cores = machine["load_average_before"], machine["load_average_after"], machine["cores"]
    busy = max(before, after) > 0.25 * cores
    note = (
        "Other work was running on the machine during this run (see the load averages and the "
        '"of which others %" columns): the numbers are noisy, the ratios within one run are what to read.'
        if busy
        else "The machine was otherwise idle at the start and the end of the run."
    )
    return note


def render(summary: dict[str, Any], previous: str = "") -> str:
    """The Markdown report of one run (`previous`: the file it replaces, for the hand-written section)."""
    machine, scenarios = summary["machine"], summary["scenarios"]
    cores = machine["cores"] or 1

    def rows(*keys: str) -> list[dict[str, Any]]:
        return [scenarios[k] for k in keys if k in scenarios]

    zero = rows(
        "service_1p_0ms",
        "service_2p_0ms",
        "service_3p_0ms",
        "aiohttp_0ms",
        "celery_prefork_0ms",
        "celery_threads64_0ms",
        "celery_noop_0ms",
    )
    slow = rows(
        "service_1p_200ms",
        "service_1p_200ms_256conn",
        "aiohttp_200ms",
        "celery_threads64_200ms",
        "celery_threads256_200ms",
        "celery_prefork_200ms",
    )
    quick = ""
    if summary["quick"]:
        quick = " (**quick mode**: small batches, a check that the suite runs, not a measurement)"
    prefork_slow = next((r["requests"] for r in slow if r["label"].endswith("prefork")), None)
    load_before, load_after = machine["load_average_before"], machine["load_average_after"]
    return f"""# Performance

The service side by side with plain aiohttp and naive Celery peers, measured in one run{quick}.
This file is written by the benchmark; rerun it rather than editing the numbers:

```sh
{summary["command"]}
```

It needs RabbitMQ (`--broker-url`, default the local one) and runs every scenario below in one go
(about {max(1, round(summary["duration_s"] / 60))} min here). `--quick` runs small batches in well
under a minute; `--requests N` sets the batch size. It prints the same numbers as JSON.

## Machine

| | |
|---|---|
| CPU | {machine["cpu"]}, {machine["cores"]} cores |
| Python | {machine["python"]} |
| RabbitMQ | {machine["rabbitmq"]} on loopback ({machine["erlang"]}) |
| date | {machine["date"]} |
| load average (1 min) before / after | {load_before:.2f} / {load_after:.2f} |

{_busy_note(machine)}

## Targets

{_targets(summary["targets"])}

## Throughput at 0 ms API latency

`documentsGetById` against the emulator answering at once. The service runs 32 requests in flight per
process; plain aiohttp the same 32.

{_throughput_table(zero)}

## Throughput at 200 ms API latency

256 in flight for the service (one process, `--concurrency 256`) and plain aiohttp; the naive
threads peer with 64 and with 256 threads; the prefork peer ({_fmt(prefork_slow)} requests) is bounded by
2 processes / 0.2 s = 10 requests/s by construction.

{_throughput_table(slow)}

## Latency at low load

One request at a time, 0 ms API latency, from publishing the request (or sending the HTTP request,
for aiohttp) to receiving the result. Added latency is that minus the API's configured latency
(0 ms here), so it includes the emulator's own handling of the call (see plain aiohttp).

{_low_load(scenarios)}

## Growth with processes

The service at 0 ms with 1, 2 and 3 worker processes (32 in flight each) on the same queue.

{_growth(scenarios, cores)}

## Memory with requests queued

{_memory(scenarios)}

## Running one process per core

{_processes_note(summary)}

## Method

- The stand-in Hypatos server is the project's emulator (`hypatos-emulator`) in a process of its
  own, over HTTP on loopback, seeded with {100} documents through its admin API; its latency is set
  per scenario through `/_emulator/faults`. Token requests are its counter over the scenario,
  warm-up included.
- The service: real `python -m worker run --concurrency C` processes with default settings
  (`HYPATOS_LOG_LEVEL=WARNING`, no Redis), on queues unique to the run. Requests are plain AMQP
  JSON messages (pika, persistent) on its request queue; completions are its result messages.
- Naive Celery peers (`ops/benchmarks/peers.py`): `requests` through one `requests.Session` per
  process with the token fetched once per process and cached (no lock), results through Celery's
  `rpc://` backend to a reply queue of the load generator; Celery defaults otherwise. Tasks are
  sent with `send_task`. No-op tasks: the same, doing nothing.
- Plain aiohttp: one process, a semaphore of the in-flight count, one token, `GET /documents/{{id}}`.
- Same for all: the system runs and is warmed up (a batch as large as its in-flight count), then the
  load generator, a process of its own, submits the whole batch at once (publishing from a thread
  while it collects completions) and rate = requests / (last completion - first submission).
  Latency is completion - submission per request; under a full batch it is mostly time in the queue.
  Each scenario runs {summary["repeat"]} measured batch(es) on the same running system; the tables
  show the fastest (the least disturbed by other work on the machine) with its own CPU and latency
  figures, and the rates of all of them ("all runs"). "Submitted in" is how long the load
  generator took to publish the batch: when it is close to the batch's whole time, the client, not
  the system, set the pace.
- CPU per request is read from `/proc/<pid>/stat` before and after the measured batch: the
  system's processes (all of a worker's process tree; for aiohttp the client process itself),
  RabbitMQ's `beam.smp` (shared with anything else using the broker), the emulator, and the load
  generator (its own CPU clock). "Machine busy" is `/proc/stat` over the same interval; "of which
  others" is what none of the measured processes used. Peak RSS is `VmHWM` of each process.
- The emulator is one process: its CPU per request is in the tables, so a run where it would be the
  bottleneck shows (its state is in memory, so several emulator processes would not share tokens
  and documents).

{TIME_SECTION}

{_time_section(previous)}
{kept_sections(previous)}"""
