"""The processes a benchmark run starts and stops: the emulator, the service's workers, the Celery peers.

Each is a real process started the way a user would start it, stopped by its pid (SIGTERM, then
SIGKILL after a grace period).  Queue names are unique to each start, and a system deletes the
queues and exchanges it created when it stops; nothing shared is touched.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pika

from ops.benchmarks.load import pika_parameters

ROOT = Path(__file__).resolve().parents[2]
STOP_GRACE_S = 30.0


def _stop(processes: list[subprocess.Popen[bytes]], grace_s: float = STOP_GRACE_S) -> None:
    """SIGTERM, then SIGKILL what still runs after `grace_s`."""
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


class Broker:
    """Short pika connections for waiting on consumers, reading the broker's version and cleaning up
    (a connection per use: a blocking connection left idle during a long batch misses heartbeats)."""

    def __init__(self, url: str) -> None:
        self.url = url

    def _connect(self) -> pika.BlockingConnection:
        return pika.BlockingConnection(pika_parameters(self.url))

    def versions(self) -> dict[str, str]:
        """RabbitMQ's and Erlang's versions, as the broker announces them when a client connects."""
        connection = self._connect()
        try:
            properties = connection._impl.server_properties  # pika keeps Connection.Start's here
        finally:
            connection.close()
        text = {k: v.decode() if isinstance(v, bytes) else str(v) for k, v in properties.items()}
        return {"rabbitmq": text.get("version", "unknown"), "erlang": text.get("platform", "unknown")}

    @staticmethod
    def _consumers(connection: pika.BlockingConnection, queue: str) -> int:
        channel = connection.channel()
        try:
            return channel.queue_declare(queue=queue, passive=True).method.consumer_count
        except pika.exceptions.ChannelClosedByBroker:
            return 0  # not declared yet
        finally:
            if channel.is_open:
                channel.close()

    def wait_for_consumers(self, queue: str, count: int, processes: list[subprocess.Popen[bytes]]) -> None:
        """Block until `queue` has `count` consumers; fail if a process exits or a minute passes."""
        connection = self._connect()
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                if self._consumers(connection, queue) >= count:
                    return
                exited = [p.returncode for p in processes if p.poll() is not None]
                if exited:
                    raise RuntimeError(f"a process serving {queue} exited with status {exited[0]}")
                connection.sleep(0.1)
        finally:
            connection.close()
        raise TimeoutError(f"{queue}: {count} consumers did not appear within 60 s")

    def delete(self, *, queues: Sequence[str] = (), exchanges: Sequence[str] = ()) -> None:
        """Delete queues and exchanges this run created (missing ones are fine)."""
        connection = self._connect()
        try:
            for kind, names in (("queue", queues), ("exchange", exchanges)):
                for name in names:
                    channel = connection.channel()
                    with contextlib.suppress(pika.exceptions.ChannelClosedByBroker):
                        if kind == "queue":
                            channel.queue_delete(name)
                        else:
                            channel.exchange_delete(name)
                    if channel.is_open:
                        channel.close()
        finally:
            connection.close()


class EmulatorProcess:
    """``hypatos-emulator`` in a process of its own, driven through its admin API."""

    def __init__(self, log_dir: Path) -> None:
        self.client_id = "bench-client"
        self.client_secret = secrets.token_urlsafe(16)
        command = [
            sys.executable,
            "-m",
            "emulator.cli",
            "--port",
            "0",
            "--client-id",
            self.client_id,
            "--client-secret",
            self.client_secret,
            "--no-seed-demo",
            "--seed",
            "1",
        ]
        self.process = subprocess.Popen(
            command, cwd=ROOT, stdout=subprocess.PIPE, stderr=(log_dir / "emulator.log").open("wb")
        )
        first_line = self.process.stdout.readline().decode() if self.process.stdout else ""
        if "http" not in first_line:
            self.stop()
            raise RuntimeError(f"the emulator did not start: {first_line!r}")
        self.api_url = first_line.split(":", 1)[1].strip()
        self.root_url = self.api_url.removesuffix("/v2")
        self.token_url = f"{self.api_url}/auth/token"

    @property
    def pid(self) -> int:
        return self.process.pid

    def admin(self, path: str, body: dict[str, Any] | None = None) -> Any:
        """Call the admin API (POST with a body, else GET)."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.root_url}/_emulator/{path}", data=data, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())

    def seed(self, count: int) -> list[str]:
        """Seed `count` finished documents; their ids."""
        return [doc["id"] for doc in self.admin("seed/documents", {"count": count, "state": "done"})]

    def set_latency(self, latency_ms: float) -> None:
        self.admin("faults", {"latency_ms": latency_ms})

    def token_requests(self) -> int:
        return int(self.admin("counters")["token_requests"])

    def stop(self) -> None:
        _stop([self.process])


class Service:
    """The service: ``python -m worker run`` processes consuming one request queue of their own."""

    def __init__(
        self,
        broker: Broker,
        emulator: EmulatorProcess,
        log_dir: Path,
        *,
        concurrency: int,
        env: dict[str, str] | None = None,
    ) -> None:
        prefix = f"perf-{uuid.uuid4().hex[:8]}"
        self.queues = {
            "HYPATOS_REQUEST_QUEUE": f"{prefix}.requests",
            "HYPATOS_RESULT_QUEUE": f"{prefix}.results",
            "HYPATOS_DEAD_LETTER_QUEUE": f"{prefix}.dead",
            "HYPATOS_TASK_QUEUE": f"{prefix}.tasks",
        }
        self.broker = broker
        #: Worker processes started so far (a ``--processes`` command counts for all it starts).
        self.process_count = 0
        connections = log_dir / f"{prefix}.connections.toml"
        connections.write_text(
            f'[connections.bench]\nendpoint_url = "{emulator.api_url}"\n'
            f'client_id = "{emulator.client_id}"\nclient_secret = "{emulator.client_secret}"\n'
        )
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("HYPATOS_")}  # defaults only
        self.env = {
            **inherited,
            **self.queues,
            **(env or {}),
            "HYPATOS_BROKER_URL": broker.url,
            "HYPATOS_CONNECTIONS_FILE": str(connections),
            "HYPATOS_ALLOW_CUSTOM_ENDPOINTS": "1",
            "HYPATOS_LOG_LEVEL": "WARNING",
        }
        self.concurrency = concurrency
        self.log = (log_dir / f"{prefix}.worker.log").open("wb")
        self.processes: list[subprocess.Popen[bytes]] = []

    @property
    def request_queue(self) -> str:
        return self.queues["HYPATOS_REQUEST_QUEUE"]

    @property
    def result_queue(self) -> str:
        return self.queues["HYPATOS_RESULT_QUEUE"]

    def declare(self) -> None:
        """Declare the service's queues as a worker does at start (to queue requests before any runs)."""
        from kombu import Connection

        from worker.queues import declare_topology
        from worker.settings import WorkerSettings

        settings = WorkerSettings(
            **{k.removeprefix("HYPATOS_").lower(): v for k, v in self.env.items() if k in self.queues}
        )
        with Connection(self.broker.url) as connection:
            declare_topology(connection, settings)

    def start(self, processes: int = 1, *, wait: bool = True) -> None:
        """Start `processes` more worker processes: one ``run --processes N`` command when the CLI has
        that option, else one ``run`` command per process."""
        command = [sys.executable, "-m", "worker", "run", f"--concurrency={self.concurrency}"]
        commands = [command] * processes
        if processes > 1 and run_has_processes_option():
            commands = [[*command, f"--processes={processes}"]]
        for argv in commands:
            self.processes.append(
                subprocess.Popen(argv, cwd=ROOT, env=self.env, stdout=self.log, stderr=subprocess.STDOUT)
            )
        self.process_count += processes
        if wait:
            self.broker.wait_for_consumers(self.request_queue, self.process_count, self.processes)

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.processes]

    def stop(self) -> None:
        _stop(self.processes)
        self.log.close()
        names = list(self.queues.values())
        self.broker.delete(queues=names, exchanges=[self.request_queue, self.queues["HYPATOS_TASK_QUEUE"]])


class CeleryPeer:
    """A Celery worker of `ops.benchmarks.peers` on a queue of its own."""

    def __init__(
        self, broker: Broker, emulator: EmulatorProcess, log_dir: Path, *, pool: str, concurrency: int
    ) -> None:
        self.broker = broker
        self.queue = f"perf-{uuid.uuid4().hex[:8]}.celery"
        self.env = {
            **os.environ,
            "BENCH_BROKER_URL": broker.url,
            "BENCH_API_URL": emulator.api_url,
            "BENCH_TOKEN_URL": emulator.token_url,
            "BENCH_CLIENT_ID": emulator.client_id,
            "BENCH_CLIENT_SECRET": emulator.client_secret,
        }
        self.command = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "ops.benchmarks.peers",
            "worker",
            f"--pool={pool}",
            f"--concurrency={concurrency}",
            "-Q",
            self.queue,
            "--loglevel=WARNING",
            "--without-mingle",
            "--without-gossip",
            "--without-heartbeat",
            f"--hostname=perf-{uuid.uuid4().hex[:6]}@%h",
        ]
        self.log = (log_dir / f"{self.queue}.log").open("wb")
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self) -> None:
        self.processes.append(
            subprocess.Popen(self.command, cwd=ROOT, env=self.env, stdout=self.log, stderr=subprocess.STDOUT)
        )
        self.broker.wait_for_consumers(self.queue, 1, self.processes)

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.processes]

    def stop(self) -> None:
        """Every task sent was answered: a short grace, then SIGKILL (Celery's threads pool notices a
        shutdown signal only seconds later)."""
        _stop(self.processes, grace_s=2.0)
        self.log.close()
        self.broker.delete(queues=[self.queue], exchanges=[self.queue])


@functools.cache
def run_has_processes_option() -> bool:
    """Whether ``hypatos-worker run`` takes ``--processes`` (one command for several processes)."""
    result = subprocess.run(
        [sys.executable, "-m", "worker", "run", "--help"], cwd=ROOT, capture_output=True, text=True
    )
    return "--processes" in result.stdout
