"""``hypatos-worker run --processes N``: one worker process per core, started and stopped as one.

A worker process runs its request path on one asyncio loop, so it uses about one core; a host with
more cores runs more processes.  The supervisor starts N children (``hypatos-worker run --processes
1``, the same settings), passes SIGTERM and SIGINT on to them, and exits when they have all exited:
with status 0 if every child did, else with the first failing child's status, after stopping the
others (a worker that cannot run is a fault to see, not to hide by running short-handed).

With ``HYPATOS_METRICS_PORT`` set, child ``i`` serves its metrics on that port plus ``i``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from types import FrameType

import structlog

log = structlog.get_logger(__name__)

#: How often the supervisor looks at its children.
POLL_S = 0.2


def process_count(value: str) -> int:
    """``auto`` (one per available core) or a positive number."""
    if value == "auto":
        return max(len(os.sched_getaffinity(0)), 1)
    count = int(value)
    if count < 1:
        raise ValueError("must be at least 1")
    return count


def _child_env(index: int) -> dict[str, str]:
    env = dict(os.environ)
    port = env.get("HYPATOS_METRICS_PORT", "").strip()
    if port:
        env["HYPATOS_METRICS_PORT"] = str(int(port) + index)
    return env


def supervise(count: int, child_args: list[str]) -> int:
    """Run `count` worker processes until they all exit; returns the exit status (module docstring)."""
    children = [
        subprocess.Popen(
            [sys.executable, "-m", "worker", "run", "--processes", "1", *child_args], env=_child_env(i)
        )
        for i in range(count)
    ]
    log.info("worker_processes_started", count=count, pids=[child.pid for child in children])

    def forward(signum: int, _frame: FrameType | None) -> None:
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, forward)
    status = 0
    while any(child.poll() is None for child in children):
        failed = [child for child in children if child.returncode not in (None, 0)]
        if failed and status == 0:
            status = failed[0].returncode or 1
            log.error("worker_process_failed", pid=failed[0].pid, status=failed[0].returncode)
            forward(signal.SIGTERM, None)
        time.sleep(POLL_S)
    if status == 0:
        status = next((child.returncode for child in children if child.returncode), 0)
    return status
