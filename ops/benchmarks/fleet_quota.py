"""A fleet shares one quota: rate achieved against the quota, 429 share, and a second connection's rate.

Two emulator API clients with their own quotas per second: ``limited`` (`--quota`, the rate learned
from ``x-ratelimit-limit``) gets `--seconds` worth of requests more than its quota at once; ``other``
(`--other-quota`) gets as many requests as its quota serves in the same time.  `--workers` real worker
processes share Redis.  Everything is measured on the emulator's request log:

- ``limited_rate_to_quota``: successful calls of ``limited`` per second, from its first call to its
  last, divided by its quota (the target is at least 0.9);
- ``limited_median_second_to_quota``: the median of its calls per second, first and last second
  aside, divided by its quota: the rate it sustained, with the start of the run (every request of
  the batch deferred once) weighing less;
- ``share_429``: 429 answers among all API calls of both connections (at most 0.01);
- ``other_rate_to_quota``, ``other_median_second_to_quota``: the same for ``other``, at the same time;
- ``deferrals_per_request``: requests sent back to the broker (for quota) per request.

Deferring a batch costs the workers about as much as answering it, so on a small or busy host the
first seconds fall short of the quota while the deferrals are processed.

    .venv/bin/python ops/benchmarks/fleet_quota.py --quota 20 --seconds 30

Needs RabbitMQ and Redis (``--broker-url``, ``--redis-url``, default the local ones).  Prints one
JSON object.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import click
import pika
import redis

from emulator.testing import EmulatorServer

TOKEN_OPERATION = "Authorization_requestAccessToken"
CLIENTS = {"limited": "limited-client", "other": "other-client"}


def _pika(url: str) -> pika.BlockingConnection:
    """A pika connection for a kombu-style broker URL (``amqp://u:p@host:port//``, the ``/`` vhost)."""
    netloc = url.split("://", 1)[1].split("/", 1)[0]
    return pika.BlockingConnection(pika.URLParameters(f"amqp://{netloc}/%2F"))


def _wait_for_consumers(connection: pika.BlockingConnection, queue: str, count: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        channel = connection.channel()
        try:
            if channel.queue_declare(queue=queue, passive=True).method.consumer_count >= count:
                channel.close()
                return
            channel.close()
        except pika.exceptions.ChannelClosedByBroker:
            pass  # not declared yet
        connection.sleep(0.2)
    raise TimeoutError("workers did not start")


def _queue_names() -> dict[str, str]:
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    return {
        f"HYPATOS_{kind.upper()}_QUEUE": f"{prefix}.{name}"
        for kind, name in (
            ("request", "requests"),
            ("result", "results"),
            ("dead_letter", "dead"),
            ("task", "tasks"),
        )
    }


def _connections_file(emulator: EmulatorServer, path: Path) -> Path:
    path.write_text(
        "".join(
            f'[connections.{name}]\nendpoint_url = "{emulator.base_url}"\n'
            f'client_id = "{client}"\nclient_secret = "{client}-secret"\n\n'
            for name, client in CLIENTS.items()
        ),
        encoding="utf-8",
    )
    return path


def _start_workers(env: dict[str, str], workers: int, concurrency: int | None, log_dir: Path) -> list[Any]:
    command = [sys.executable, "-m", "worker", "run"]
    if concurrency:
        command.append(f"--concurrency={concurrency}")
    processes = []
    for index in range(workers):
        log = (log_dir / f"worker-{index}.log").open("wb")
        processes.append(
            subprocess.Popen(command, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT)
        )
    return processes


def _run_batch(env: dict[str, str], requests: list[dict[str, Any]], args: dict[str, Any]) -> None:
    """Publish every request at once and wait for all results."""
    connection = _pika(args["broker_url"])
    try:
        _wait_for_consumers(connection, env["HYPATOS_REQUEST_QUEUE"], args["workers"])
        channel = connection.channel()
        for request in requests:
            channel.basic_publish("", env["HYPATOS_REQUEST_QUEUE"], json.dumps(request).encode())
        messages = channel.consume(env["HYPATOS_RESULT_QUEUE"], auto_ack=True, inactivity_timeout=120)
        for received, (_method, _props, body) in enumerate(messages, start=1):
            if body is None:
                raise TimeoutError(f"only {received - 1} results")
            if received == len(requests):
                break
        channel.cancel()
        for queue in (
            env[k]
            for k in (
                "HYPATOS_REQUEST_QUEUE",
                "HYPATOS_RESULT_QUEUE",
                "HYPATOS_DEAD_LETTER_QUEUE",
                "HYPATOS_TASK_QUEUE",
            )
        ):
            channel.queue_delete(queue)
    finally:
        connection.close()


def _rate_to_quota(calls: list[dict[str, Any]], quota: float) -> float:
    succeeded = sorted(entry["time"] for entry in calls if entry["status"] == 200)
    span_s = succeeded[-1] - succeeded[0]
    return round((len(succeeded) - 1) / span_s / quota, 3) if span_s > 0 else 0.0


def _per_second(calls: list[dict[str, Any]], start: float) -> list[int]:
    seconds = [int(entry["time"] - start) for entry in calls]
    return [seconds.count(second) for second in range(max(seconds) + 1)] if seconds else []


def _median_second_to_quota(calls: list[dict[str, Any]], quota: float) -> float:
    """The median of calls per second from the first call on, the first and last second aside."""
    per_second = _per_second(calls, min(entry["time"] for entry in calls))[1:-1]
    return round(statistics.median(per_second) / quota, 3) if per_second else 0.0


def _report(log: list[dict[str, Any]], args: dict[str, Any], deferrals: int, requests: int) -> dict[str, Any]:
    calls = {
        name: [e for e in log if e["client_id"] == client and e["operation"] != TOKEN_OPERATION]
        for name, client in CLIENTS.items()
    }
    every_call = calls["limited"] + calls["other"]
    detail = {}
    if args["detail"]:
        start = min(entry["time"] for entry in log)
        detail = {f"{name}_calls_per_s": _per_second(calls[name], start) for name in CLIENTS}
    return {
        "workers": args["workers"],
        "quota": args["quota"],
        "other_quota": args["other_quota"],
        "requests": requests,
        "api_calls": len(every_call),
        "limited_rate_to_quota": _rate_to_quota(calls["limited"], args["quota"]),
        "limited_median_second_to_quota": _median_second_to_quota(calls["limited"], args["quota"]),
        "other_rate_to_quota": _rate_to_quota(calls["other"], args["other_quota"]),
        "other_median_second_to_quota": _median_second_to_quota(calls["other"], args["other_quota"]),
        "share_429": round(sum(e["status"] == 429 for e in every_call) / len(every_call), 4),
        "deferrals_per_request": round(deferrals / requests, 2),
        **detail,
    }


def _deferrals(log_dir: Path) -> int:
    return sum(path.read_text(errors="replace").count('"request_deferred"') for path in log_dir.glob("*.log"))


@click.command()
@click.option("--quota", default=20, show_default=True, help="Calls per second of the limited connection.")
@click.option("--other-quota", default=20, show_default=True, help="Calls per second of the other one.")
@click.option("--seconds", default=30, show_default=True, help="How long the limited backlog lasts.")
@click.option("--workers", default=4, show_default=True)
@click.option("--concurrency", type=int, help="In flight per worker (default: the worker's own).")
@click.option("--broker-url", default="amqp://guest:guest@127.0.0.1:5672//", show_default=True)
@click.option("--redis-url", default="redis://127.0.0.1:6379/0", show_default=True)
@click.option("--detail", is_flag=True, help="Also print each connection's calls per second.")
def main(
    quota: int,
    other_quota: int,
    seconds: int,
    workers: int,
    concurrency: int | None,
    broker_url: str,
    redis_url: str,
    detail: bool,
) -> None:
    """Run the fleet against two quotas at once and print what each connection achieved."""
    args = {
        "quota": quota,
        "other_quota": other_quota,
        "workers": workers,
        "broker_url": broker_url,
        "detail": detail,
    }
    prefix = f"bench-{uuid.uuid4().hex[:8]}:"
    with EmulatorServer(log_size=1_000_000) as emulator, tempfile.TemporaryDirectory() as tmp:
        for client, limit in zip(CLIENTS.values(), (quota, other_quota), strict=True):
            emulator.add_client(client, f"{client}-secret", rate_limit=limit, rate_window_s=1)
        ids = [d["id"] for d in emulator.seed_documents(20)]
        env = {
            **_queue_names(),
            "HYPATOS_BROKER_URL": broker_url,
            "HYPATOS_REDIS_URL": redis_url,
            "HYPATOS_REDIS_PREFIX": prefix,
            "HYPATOS_ALLOW_CUSTOM_ENDPOINTS": "1",
            "HYPATOS_CONNECTIONS_FILE": str(_connections_file(emulator, Path(tmp) / "connections.toml")),
        }
        counts = {"limited": quota * seconds, "other": other_quota * seconds}
        requests = [
            {
                "id": f"{name}-{i}",
                "connection": name,
                "operation": "documentsGetById",
                "params": {"id": ids[i % len(ids)]},
            }
            for i in range(max(counts.values()))
            for name in CLIENTS
            if i < counts[name]
        ]
        processes = _start_workers(env, workers, concurrency, Path(tmp))
        try:
            _run_batch(env, requests, args)
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                process.wait(30)
            client = redis.Redis.from_url(redis_url)
            keys = list(client.scan_iter(match=f"{prefix}*"))
            if keys:
                client.delete(*keys)
        report = _report(emulator.requests(), args, _deferrals(Path(tmp)), len(requests))
    click.echo(json.dumps(report))


if __name__ == "__main__":
    main()
