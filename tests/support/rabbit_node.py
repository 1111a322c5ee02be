"""A private RabbitMQ node for tests that must stop and restart the broker.

The machine's shared broker is never touched: the node gets its own name, ports, data directory,
configuration file and an empty plugin list, and runs in the foreground as a child of the test, so
it is stopped by its own pid (or by ``rabbitmqctl -n <node> stop``). Its data directory survives a
stop, so a restart brings back durable queues and persistent messages.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

from tests.support.metrics import free_port


def _port_answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def rabbitmq_scripts() -> tuple[str, str] | None:
    """Paths of ``rabbitmq-server`` and ``rabbitmqctl`` runnable as the current user, or None.

    Debian's packages put a wrapper on the PATH that switches to the ``rabbitmq`` user (dropping
    the environment the node is configured with); the real scripts sit next to that wrapper.
    """
    found = shutil.which("rabbitmq-server")
    if found is None:
        return None
    real = Path(os.path.realpath(found))
    folder = real.parent
    if real.name == "rabbitmq-script-wrapper":
        return str(folder / "rabbitmq-server"), str(folder / "rabbitmqctl")
    ctl = shutil.which("rabbitmqctl") or str(folder / "rabbitmqctl")
    return str(real), ctl


class RabbitNode:
    """One RabbitMQ node on 127.0.0.1 with its own ports and data; `start()`, `stop()`, `restart()`."""

    def __init__(self, base_dir: Path, *, start_timeout_s: float = 90.0) -> None:
        scripts = rabbitmq_scripts()
        if scripts is None:
            raise FileNotFoundError("rabbitmq-server is not on the PATH")
        self.server_script, self.ctl_script = scripts
        self.base_dir = base_dir
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.name = f"hypatos-test-{uuid.uuid4().hex[:8]}@localhost"
        self.port = free_port()
        self.dist_port = free_port()
        self.start_timeout_s = start_timeout_s
        self.process: subprocess.Popen[bytes] | None = None
        self._starts = 0
        (base_dir / "enabled_plugins").write_text("[].\n")
        (base_dir / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = 127.0.0.1:{self.port}\nlog.console = false\nlog.file.level = warning\n"
        )
        (base_dir / "rabbitmq-env.conf").write_text("")

    @property
    def url(self) -> str:
        """The node's AMQP URL (kombu syntax, ``/`` vhost)."""
        return f"amqp://guest:guest@127.0.0.1:{self.port}//"

    @property
    def env(self) -> dict[str, str]:
        """The environment both scripts need to address this node and only this node."""
        base = self.base_dir
        return {
            **os.environ,
            "HOME": str(base),  # the Erlang cookie shared by the server and rabbitmqctl
            "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(base / "log"),
            "RABBITMQ_PID_FILE": str(base / "rabbit.pid"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
            "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq.conf"),
            "RABBITMQ_CONF_ENV_FILE": str(base / "rabbitmq-env.conf"),
        }

    def start(self) -> None:
        """Start the node (on the same data as before, if it ran already) and wait until AMQP answers."""
        if self.process is not None and self.process.poll() is None:
            return
        self._starts += 1
        output = (self.base_dir / f"server-{self._starts}.out").open("wb")
        self.process = subprocess.Popen(
            [self.server_script],
            env=self.env,
            cwd=self.base_dir,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"rabbitmq-server exited with {self.process.returncode}: {self.output()}")
            if _port_answers(self.port):
                return
            time.sleep(0.2)
        self.stop()
        raise TimeoutError(f"RabbitMQ node {self.name} did not listen within {self.start_timeout_s}s")

    def stop(self, timeout_s: float = 60.0) -> None:
        """Stop the node gracefully (``rabbitmqctl stop``), by its pid if that does not work."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(subprocess.TimeoutExpired, OSError):
            subprocess.run(
                [self.ctl_script, "-n", self.name, "stop"],
                env=self.env,
                cwd=self.base_dir,
                capture_output=True,
                timeout=timeout_s,
                check=False,
            )
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGTERM)  # the script stops its Erlang VM on TERM
            try:
                process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self._kill_vm()
                process.kill()
                process.wait(timeout=10)
        deadline = time.monotonic() + timeout_s
        while _port_answers(self.port) and time.monotonic() < deadline:
            time.sleep(0.1)

    def _kill_vm(self) -> None:
        """Last resort: SIGKILL the node's Erlang VM, by the pid it wrote."""
        with contextlib.suppress(OSError, ValueError):
            pid = int((self.base_dir / "rabbit.pid").read_text().strip())
            os.kill(pid, signal.SIGKILL)

    def restart(self) -> None:
        """Stop, then start again on the same data directory and ports."""
        self.stop()
        self.start()

    def output(self) -> str:
        """What the server script printed (the last few thousand characters)."""
        texts = [path.read_text(errors="replace") for path in sorted(self.base_dir.glob("server-*.out"))]
        return "\n".join(texts)[-4000:]
