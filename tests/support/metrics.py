"""Reading a worker's Prometheus endpoint from a test: a free port to give it, and its samples."""

from __future__ import annotations

import socket
import time
import urllib.request


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def scrape(port: int, timeout_s: float = 20.0) -> str:
    """The text exposition served on `port`, waiting up to `timeout_s` for the endpoint to come up."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
                return response.read().decode()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def total(port: int, name: str) -> float:
    """The sum of every sample of `name`, whatever its labels (0 when there is none yet)."""
    found = 0.0
    for line in scrape(port).splitlines():
        metric, _, value = line.rpartition(" ")
        if metric.partition("{")[0] == name:
            found += float(value)
    return found
