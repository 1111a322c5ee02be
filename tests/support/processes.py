"""Real worker processes for integration tests: started as a user would, stopped by their pid."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from kombu import Connection

from tests.support.amqp import AmqpTestClient
from worker.queues import public_queues
from worker.settings import WorkerSettings


class WorkerFleet:
    """Starts ``python -m worker run`` processes with a given environment and stops them."""

    def __init__(self, env: dict[str, str], *, log_dir: Path, amqp: AmqpTestClient) -> None:
        self.env = env
        self.log_dir = log_dir
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.amqp = amqp
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self, count: int = 1, *, concurrency: int = 32, wait: bool = True, **env: str) -> None:
        """Start `count` worker processes and, with `wait`, block until they consume."""
        before = len(self.processes)
        for index in range(before, before + count):
            log = (self.log_dir / f"worker-{index}.log").open("wb")
            process = subprocess.Popen(
                [sys.executable, "-m", "worker", "run", f"--concurrency={concurrency}"],
                env={**os.environ, **self.env, **env},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            self.processes.append(process)
        if wait:
            self.amqp.wait_for_consumers(self.env["HYPATOS_REQUEST_QUEUE"], len(self.processes))
            self.amqp.wait_for_consumers(self.env["HYPATOS_TASK_QUEUE"], len(self.processes))

    def declare_queues(self) -> None:
        """Declare the public queues as a worker does at start, so a batch can wait for the workers."""
        settings = WorkerSettings(
            **{key.removeprefix("HYPATOS_").lower(): value for key, value in self.env.items()}
        )
        with Connection(settings.broker_url) as connection:
            for queue in public_queues(settings):
                queue.bind(connection.default_channel).declare()

    def logs(self) -> str:
        """Everything the workers wrote so far."""
        return "\n".join(
            path.read_text(errors="replace") for path in sorted(self.log_dir.glob("worker-*.log"))
        )

    def kill(self, index: int, sig: int = signal.SIGKILL) -> None:
        """Send `sig` to one worker."""
        self.processes[index].send_signal(sig)

    def stop_all(self, timeout_s: float = 20.0) -> None:
        """SIGTERM every worker, then SIGKILL the ones still running after `timeout_s`."""
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
