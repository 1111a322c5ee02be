"""``hypatos-worker demo``: the whole service on one machine with nothing but Python.

It starts the Hypatos emulator (as a separate process, through its own command), writes a
connections file for it and sends a small batch of sample requests, printing each result:

- with RabbitMQ answering at the broker URL, through the public AMQP contract
  (`worker.tools.queue_client`) to a real worker process, on queues of the demo's own;
- with no broker answering, it says so in one line and runs the request handler
  (`tasks.handle.handle_request`) in this process instead, on real `Services`, with a stand-in
  for the broker that keeps what the handler publishes (`CollectingPublisher`).

A broker that answers but refuses (wrong credentials, missing vhost) stops the demo with one line.
The demo's worker and handler never see this shell's other ``HYPATOS_*`` settings (a production
Redis, a metrics port), and no message shows the broker password.
"""

from __future__ import annotations

import asyncio
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
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click

from worker.settings import WorkerSettings
from worker.tools.broker import BrokerRefused, BrokerUnreachable, connect
from worker.tools.queue_client import HypatosQueueClient
from worker.tools.results import decode, format_result

DEFAULT_BROKER = "amqp://guest:guest@127.0.0.1:5672//"
#: How long the demo waits for its worker to start, and then for all results.
WORKER_START_TIMEOUT_S = 60.0
RESULTS_TIMEOUT_S = 60.0
#: Lines of the worker's output shown when it stops early.
OUTPUT_TAIL_LINES = 25


def demo_queues() -> dict[str, str]:
    """Queue names of one demo run (never those of a deployment, nor of another demo run)."""
    prefix = f"hypatos-demo-{uuid.uuid4().hex[:8]}"
    return {
        "HYPATOS_REQUEST_QUEUE": f"{prefix}.requests",
        "HYPATOS_RESULT_QUEUE": f"{prefix}.results",
        "HYPATOS_DEAD_LETTER_QUEUE": f"{prefix}.dead",
        "HYPATOS_TASK_QUEUE": f"{prefix}.tasks",
    }


def progress(message: str) -> None:
    """A progress line for people, on stderr (stdout holds the results)."""
    click.echo(message, err=True)


def _reachable(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80), timeout=1):
            return True
    except OSError:
        return False


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def emulator_process(client_id: str, client_secret: str) -> Iterator[str]:
    """Run ``hypatos-emulator`` on a free port; yields its root URL."""
    port = _free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "emulator.cli",
            "--port",
            str(port),
            "--client-id",
            client_id,
            "--client-secret",
            client_secret,
            "--processing-s",
            "0.5",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
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
        f"{root}/_emulator{path}",
        data=json.dumps(payload).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def _sample_requests(document_ids: list[str]) -> list[dict[str, Any]]:
    requests: list[dict[str, Any]] = [
        {
            "id": "demo-list",
            "connection": "demo",
            "operation": "documentsList",
            "params": {"state": ["done", "doneAutomatically"], "limit": 10},
        },
    ]
    requests += [
        {
            "id": f"demo-get-{n}",
            "connection": "demo",
            "operation": "documentsGetById",
            "params": {"id": doc_id},
        }
        for n, doc_id in enumerate(document_ids)
    ]
    requests.append(
        {"id": "demo-bad", "connection": "demo", "operation": "documentsList", "params": {"limit": 500}}
    )
    return requests


@dataclass
class Outcome:
    """What the demo got back: results, and messages set aside instead of answered."""

    results: list[dict[str, Any]] = field(default_factory=list)
    dead_letters: list[str] = field(default_factory=list)


# ---- in-process mode ------------------------------------------------------------------------------


class _DemoSettings(WorkerSettings):
    """Settings from the demo's own values only, never from this shell's ``HYPATOS_*`` variables."""

    @classmethod
    def settings_customise_sources(cls, settings_cls: Any, init_settings: Any, *_: Any, **__: Any) -> Any:
        return (init_settings,)


def demo_settings(env: dict[str, str]) -> WorkerSettings:
    """Worker settings for the in-process handler, from the variables the demo would give a worker."""
    values: dict[str, Any] = {name.removeprefix("HYPATOS_").lower(): value for name, value in env.items()}
    return _DemoSettings(**values)


class _Counter:
    """Prints "N of M results" as they come, at most once a second (and always the last)."""

    def __init__(self, total: int) -> None:
        self.total = total
        self._shown = -1
        self._shown_at = 0.0

    def __call__(self, done: int) -> None:
        now = time.monotonic()
        if done != self._shown and (done == self.total or now - self._shown_at >= 1.0):
            progress(f"{done} of {self.total} results")
            self._shown, self._shown_at = done, now


def run_in_process(env: dict[str, str], requests: list[dict[str, Any]]) -> Outcome:
    """Feed each request to the request handler in this process, as a worker would (module docstring)."""
    from worker.logging import configure_logging
    from worker.tools.in_process import handle_without_broker  # the handler's imports, for this mode only

    configure_logging("ERROR", "console")  # the results are the output; errors still show
    bodies = [json.dumps(request).encode() for request in requests]
    results, dead = asyncio.run(
        handle_without_broker(
            demo_settings(env), bodies, timeout_s=RESULTS_TIMEOUT_S, on_done=_Counter(len(requests))
        )
    )
    return Outcome([decode(body) for body in results], dead)


# ---- with RabbitMQ --------------------------------------------------------------------------------


def _tail(log_path: Path, lines: int = OUTPUT_TAIL_LINES) -> str:
    text = log_path.read_text(encoding="utf-8", errors="replace") if log_path.exists() else ""
    return "\n".join(text.splitlines()[-lines:]) or "(no output)"


@contextlib.contextmanager
def worker_process(env: dict[str, str], log_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A real ``hypatos-worker run`` process with the demo's settings only; its output goes to `log_path`."""
    inherited = {name: value for name, value in os.environ.items() if not name.startswith("HYPATOS_")}
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "worker", "run", "--concurrency=8"],
            env={**inherited, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=40)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def _check_alive(process: subprocess.Popen[bytes], log_path: Path, doing: str) -> None:
    """Stop at once when the worker exited, showing the end of its output."""
    if process.poll() is not None:
        raise click.ClickException(
            f"the worker exited (status {process.returncode}) {doing}; the end of its output:\n"
            f"{_tail(log_path)}"
        )


def _wait_for_worker(client: HypatosQueueClient, process: subprocess.Popen[bytes], log_path: Path) -> None:
    progress("waiting for the worker...")
    started = time.monotonic()
    said = started
    while not client.queue_ready():
        _check_alive(process, log_path, "before it consumed its queue")
        now = time.monotonic()
        if now - started > WORKER_START_TIMEOUT_S:
            raise click.ClickException(
                f"the worker did not start within {WORKER_START_TIMEOUT_S:g} s; the end of its output:\n"
                f"{_tail(log_path)}"
            )
        if now - said >= 5:
            progress(f"still waiting for the worker ({now - started:.0f} s)...")
            said = now
        time.sleep(0.2)
    progress("the worker is consuming; sending the requests")


def _collect(
    client: HypatosQueueClient, process: subprocess.Popen[bytes], log_path: Path, total: int
) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    counter = _Counter(total)
    deadline = time.monotonic() + RESULTS_TIMEOUT_S
    while len(results) < total and time.monotonic() < deadline:
        results += client.results(count=total - len(results), timeout_s=1.0)
        counter(len(results))
        if len(results) < total:
            _check_alive(process, log_path, f"with {len(results)} of {total} results sent")
    return results


def run_with_worker(url: str, env: dict[str, str], requests: list[dict[str, Any]], log_path: Path) -> Outcome:
    """Send the requests to a real worker process through RabbitMQ and collect the results."""
    with HypatosQueueClient(
        url, request_queue=env["HYPATOS_REQUEST_QUEUE"], result_queue=env["HYPATOS_RESULT_QUEUE"]
    ) as client:
        try:
            with worker_process(env, log_path) as process:
                _wait_for_worker(client, process, log_path)
                for request in requests:
                    client.submit(request)
                return Outcome(_collect(client, process, log_path, len(requests)))
        finally:
            client.delete_queues([env[name] for name in sorted(env) if name.endswith("_QUEUE")])
            # The workers' fanout exchange for requests and Celery's for tasks carry the queues' names.
            client.delete_exchanges([env["HYPATOS_REQUEST_QUEUE"], env["HYPATOS_TASK_QUEUE"]])


# ---- the command ----------------------------------------------------------------------------------


def choose_mode(explicit: str | None) -> str | None:
    """The broker URL to use, or None to run without a broker; one line either way (never the password)."""
    url = explicit or os.environ.get("HYPATOS_BROKER_URL") or DEFAULT_BROKER
    try:
        connection = connect(url, timeout_s=3)
    except BrokerUnreachable as exc:
        click.secho(
            f"warning: {exc}: the demo runs the request handler in this process, without a broker "
            "(no worker process, no queues)",
            fg="yellow",
            bold=True,
            err=True,
        )
        return None
    except BrokerRefused as exc:
        reason = str(exc) if explicit is None else str(exc).replace("HYPATOS_BROKER_URL", "--broker-url")
        raise click.ClickException(reason) from None
    progress(f"broker: {connection.as_uri(include_password=False)}")
    connection.release()
    return url


def run_demo(*, count: int, broker_url: str | None, as_json: bool = False) -> int:
    """Run the demo; returns the process exit code (0 when every result is as expected)."""
    url = choose_mode(broker_url)
    client_id, client_secret = "demo-client", secrets.token_urlsafe(16)
    with emulator_process(client_id, client_secret) as root, tempfile.TemporaryDirectory() as tmp:
        documents = _admin(root, "/seed/documents", {"count": count, "state": "done"})
        (Path(tmp) / "demo_secret").write_text(client_secret, encoding="utf-8")
        connections = Path(tmp) / "connections.toml"
        connections.write_text(
            f'[connections.demo]\nendpoint_url = "{root}/v2"\nclient_id = "{client_id}"\n'
            'client_secret_file = "demo_secret"\n',
            encoding="utf-8",
        )
        env = {
            **demo_queues(),
            "HYPATOS_CONNECTIONS_FILE": str(connections),
            "HYPATOS_ALLOW_CUSTOM_ENDPOINTS": "1",
            "HYPATOS_LOG_LEVEL": "WARNING",
            "HYPATOS_LOG_FORMAT": "console",
        }
        requests = _sample_requests([doc["id"] for doc in documents])
        if url is None:
            outcome = run_in_process(env, requests)
        else:
            env["HYPATOS_BROKER_URL"] = url
            outcome = run_with_worker(url, env, requests, Path(tmp) / "worker.log")
    return report(outcome, len(requests), as_json=as_json)


def report(outcome: Outcome, sent: int, *, as_json: bool) -> int:
    """Print the results; 0 when all came back and only the invalid sample failed."""
    results = outcome.results
    for result in sorted(results, key=lambda r: str(r.get("id"))):
        click.echo(format_result(result, as_json=as_json))
    for reason in outcome.dead_letters:
        click.echo(f"dead-lettered: {reason}", err=True)
    failed = {r.get("id") for r in results if r.get("status") != "succeeded"}
    succeeded = sum(r.get("status") == "succeeded" for r in results)
    progress(f"{len(results)} of {sent} results received; {succeeded} succeeded")
    return 0 if len(results) == sent and failed == {"demo-bad"} else 1
