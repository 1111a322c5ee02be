"""What the benchmark reads from ``/proc``: CPU time and peak memory of process trees, the machine's CPU.

Linux only.  CPU times come from ``/proc/<pid>/stat`` (user + system, in clock ticks), so a process
that runs as another user (RabbitMQ's ``beam.smp``) can be measured too; peak memory is
``VmHWM`` from ``/proc/<pid>/status`` (the resident set's high-water mark since the process started).
"""

from __future__ import annotations

import contextlib
import os
import platform
import sys
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of ``/proc/<pid>/stat`` after the command name (field 3 onwards), or None if gone."""
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()


def process_cpu_s(pid: int, *, with_reaped_children: bool = False) -> float:
    """CPU seconds (user + system) used by `pid`; with `with_reaped_children`, also by its exited children."""
    fields = _stat_fields(pid)
    if fields is None:
        return 0.0
    # After the name: state(3) ppid(4) ... utime(14) stime(15) cutime(16) cstime(17); index = field - 3.
    ticks = int(fields[11]) + int(fields[12])
    if with_reaped_children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / TICKS_PER_S


def descendants(pid: int) -> list[int]:
    """`pid` and every live process below it."""
    children: dict[int, list[int]] = {}
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if fields is not None:
                children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def tree_cpu_s(pids: list[int]) -> float:
    """CPU seconds of the trees rooted at `pids`: live members, plus children their roots have reaped."""
    total = 0.0
    for root in pids:
        for pid in descendants(root):
            total += process_cpu_s(pid, with_reaped_children=pid == root)
    return total


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident memory (``VmHWM``) in MiB, 0 if it is gone."""
    with contextlib.suppress(OSError):
        for line in (PROC / str(pid) / "status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def tree_peak_rss_mb(pids: list[int]) -> list[float]:
    """Peak resident memory of every process in the trees rooted at `pids`."""
    return [peak_rss_mb(pid) for root in pids for pid in descendants(root)]


@dataclass(frozen=True)
class MachineCpu:
    """The machine's CPU clock since boot, summed over cores: busy and total seconds."""

    busy_s: float
    total_s: float

    @classmethod
    def read(cls) -> MachineCpu:
        """Read the ``cpu`` line of ``/proc/stat``."""
        values = [int(v) for v in (PROC / "stat").read_text().splitlines()[0].split()[1:]]
        idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
        total = sum(values[:8])  # user nice system idle iowait irq softirq steal (guest is in user)
        return cls((total - idle) / TICKS_PER_S, total / TICKS_PER_S)


def listening_pid(port: int) -> int | None:
    """The process that listens on TCP `port` (found through its socket inode), or None if unknown."""
    inodes = set()
    for table in ("tcp", "tcp6"):
        with contextlib.suppress(OSError):
            for line in (PROC / "net" / table).read_text().splitlines()[1:]:
                parts = line.split()
                if parts[3] == "0A" and int(parts[1].rsplit(":", 1)[1], 16) == port:  # 0A = LISTEN
                    inodes.add(f"socket:[{parts[9]}]")
    if not inodes:
        return None
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in (entry / "fd").iterdir():
                with contextlib.suppress(OSError):
                    if os.readlink(fd) in inodes:
                        return int(entry.name)
    return None


def broker_pid(port: int) -> int | None:
    """RabbitMQ's ``beam.smp`` serving `port`: the listener if it can be seen, else the only beam.smp."""
    pid = listening_pid(port)
    if pid is not None:
        return pid
    beams = []
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if (entry / "comm").read_text().strip() == "beam.smp":
                    beams.append(int(entry.name))
    return beams[0] if len(beams) == 1 else None


def cpu_model() -> str:
    """The CPU model name as the kernel reports it."""
    with contextlib.suppress(OSError):
        for line in (PROC / "cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def load_average() -> tuple[float, float, float]:
    """The 1, 5 and 15 minute load averages."""
    return os.getloadavg()


def python_version() -> str:
    """This interpreter's version (the workers run on the same one)."""
    return f"{platform.python_implementation()} {sys.version.split()[0]}"
