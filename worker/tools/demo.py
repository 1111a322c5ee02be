"""``hypatos-worker demo``: the whole service on one machine with nothing but Python.

It starts the Hypatos emulator (as a separate process, through its own command), writes a
connections file for it, starts a worker and sends a small batch of sample requests through the
public AMQP contract (`worker.tools.queue_client`), printing each result.  With RabbitMQ reachable
it uses it and a real worker process; without one it runs the worker in this process on kombu's
in-memory transport.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click

DEFAULT_BROKER = "amqp://guest:guest@127.0.0.1:5672//"
EMBEDDED_BROKER = "memory://localhost//"
DEMO_QUEUES = {
    "HYPATOS_REQUEST_QUEUE": "hypatos-demo.requests",
    "HYPATOS_RESULT_QUEUE": "hypatos-demo.results",
    "HYPATOS_DEAD_LETTER_QUEUE": "hypatos-demo.dead",
    "HYPATOS_TASK_QUEUE": "hypatos-demo.tasks",
}


def _reachable(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 5672), timeout=1):
            return True
    except OSError:
        return False


def choose_broker(explicit: str | None) -> str:
    """The broker to use: the one given, else RabbitMQ when it answers, else the embedded one."""
    candidate = explicit or os.environ.get("HYPATOS_BROKER_URL") or DEFAULT_BROKER
    if candidate.startswith("memory") or _reachable(candidate):
        return candidate
    if explicit:
        raise click.ClickException(f"the broker at {candidate} is not reachable")
    return EMBEDDED_BROKER


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def emulator_process(client_id: str, client_secret: str) -> Iterator[str]:
    """Run ``hypatos-emulator`` on a free port; yields its root URL."""
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "emulator.cli", "--port", str(port), "--client-id", client_id,
         "--client-secret", client_secret, "--processing-s", "0.5"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    root = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while not _reachable(root):
            if process.poll() is not None or time.monotonic() > deadline:
                raise click.ClickException("the emulator did not start")
            time.sleep(0.1)
        yield root
    finally:
        process.terminate()
        process.wait(timeout=10)


def _admin(root: str, path: str, payload: dict[str, Any]) -> Any:
    request = urllib.request.Request(
        f"{root}/_emulator{path}", data=json.dumps(payload).encode(), method="POST",
        headers={"Content-Type": "application/json"},
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


@contextlib.contextmanager
def worker_running(broker: str, env: dict[str, str]) -> Iterator[None]:
    """A worker: a real process on RabbitMQ, or a worker thread on the embedded broker."""
    if broker != EMBEDDED_BROKER:
        process = subprocess.Popen(
            [sys.executable, "-m", "worker", "run", "--concurrency=8", "--loglevel=WARNING"],
            env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            yield
        finally:
            process.terminate()
            process.wait(timeout=30)
        return
    os.environ.update(env)
    from celery.contrib.testing.worker import start_worker

    from worker.app import app

    with start_worker(app, pool="threads", concurrency=8, perform_ping_check=False, loglevel="WARNING"):
        yield


def _summary(result: dict[str, Any]) -> str:
    data, error = result.get("data"), result.get("error")
    if error:
        return f"{error['code']}: {error['message']}"
    if isinstance(data, dict) and "totalCount" in data:
        return f"{len(data['data'])} of {data['totalCount']} items"
    if isinstance(data, dict) and "state" in data:
        return f"document {data['id']} state={data['state']} title={data.get('title')!r}"
    return json.dumps(data)[:100]


def print_result(result: dict[str, Any], *, as_json: bool) -> None:
    """One line per result: the whole JSON, or a summary for people."""
    if as_json:
        click.echo(json.dumps(result))
        return
    status = f"HTTP {result['http_status']}" if result["http_status"] else "no call"
    click.echo(
        f"{result['id']:<12} {result['operation']:<18} {result['status']:<9} {status:<9} {_summary(result)}"
    )


def _sample_requests(document_ids: list[str]) -> list[dict[str, Any]]:
    requests: list[dict[str, Any]] = [
        {"id": "demo-list", "connection": "demo", "operation": "documentsList",
         "params": {"state": ["done", "doneAutomatically"], "limit": 10}},
    ]  # fmt: skip
    requests += [
        {
            "id": f"demo-get-{n}",
            "connection": "demo",
            "operation": "documentsGetById",
            "params": {"id": doc_id},
        }
        for n, doc_id in enumerate(document_ids)
    ]
    requests.append({"id": "demo-bad", "connection": "demo", "operation": "documentsList",
                     "params": {"limit": 500}})  # fmt: skip
    return requests


def run_demo(*, count: int, broker_url: str | None, as_json: bool = False) -> int:
    """Run the demo; returns the process exit code (0 when every result is as expected)."""
    from worker.tools.queue_client import HypatosQueueClient

    broker = choose_broker(broker_url)
    click.echo(f"broker: {'embedded (in-memory)' if broker == EMBEDDED_BROKER else broker}", err=True)
    client_id, client_secret = "demo-client", secrets.token_urlsafe(16)
    with emulator_process(client_id, client_secret) as root, tempfile.TemporaryDirectory() as tmp:
        documents = _admin(root, "/seed/documents", {"count": count, "state": "done"})
        connections = Path(tmp) / "connections.toml"
        connections.write_text(
            f'[connections.demo]\nendpoint_url = "{root}/v2"\nclient_id = "{client_id}"\n'
            'client_secret_env = "HYPATOS_DEMO_SECRET"\n'
        )
        env = {**DEMO_QUEUES, "HYPATOS_BROKER_URL": broker, "HYPATOS_CONNECTIONS_FILE": str(connections),
               "HYPATOS_ALLOW_CUSTOM_ENDPOINTS": "1", "HYPATOS_DEMO_SECRET": client_secret,
               "HYPATOS_LOG_LEVEL": "ERROR"}  # fmt: skip
        requests = _sample_requests([doc["id"] for doc in documents])
        with worker_running(broker, env), HypatosQueueClient(
            broker, request_queue=DEMO_QUEUES["HYPATOS_REQUEST_QUEUE"],
            result_queue=DEMO_QUEUES["HYPATOS_RESULT_QUEUE"],
        ) as client:  # fmt: skip
            _wait_for_queue(client)
            for request in requests:
                client.submit(request)
            results = list(client.results(count=len(requests), timeout_s=60))
            client.delete_queues(DEMO_QUEUES.values())
    for result in sorted(results, key=lambda r: r["id"]):
        print_result(result, as_json=as_json)
    failed_as_expected = {r["id"] for r in results if r["status"] == "failed"} == {"demo-bad"}
    click.echo(f"{len(results)} of {len(requests)} results received; "
               f"{sum(r['status'] == 'succeeded' for r in results)} succeeded", err=True)  # fmt: skip
    return 0 if len(results) == len(requests) and failed_as_expected else 1


def _wait_for_queue(client: Any, timeout_s: float = 60) -> None:
    """Wait until the worker has declared the request queue (publishing earlier would drop requests)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if client.queue_ready():
            return
        time.sleep(0.2)
    raise click.ClickException("the worker did not start in time")
