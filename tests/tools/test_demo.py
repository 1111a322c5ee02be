"""``hypatos-worker demo``: with RabbitMQ through a real worker, without one in this process, and
the ways it may fail (refused credentials, a worker that stops), never showing the broker password."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import click
import pytest

from tests.support.broker_users import broker_user
from tests.support.metrics import free_port
from worker.tools import demo

#: The sample batch of ``--requests 3``: a list, three documents by id, one invalid request.
SAMPLE_IDS = ["demo-bad", "demo-get-0", "demo-get-1", "demo-get-2", "demo-list"]


def run_demo(broker_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """The demo as a user runs it, with `broker_url` as HYPATOS_BROKER_URL and other settings of this
    shell that the demo must ignore."""
    # Both invalid for a worker: the demo's worker or handler must not read them.
    env = {
        **os.environ,
        "HYPATOS_BROKER_URL": broker_url,
        "HYPATOS_METRICS_PORT": "not-a-port",
        "HYPATOS_CONCURRENCY": "0",
    }
    return subprocess.run(
        [sys.executable, "-m", "worker", "demo", "--requests", "3", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


def result_ids(done: subprocess.CompletedProcess[str]) -> list[str]:
    return [line.split()[0] for line in done.stdout.splitlines()]


def test_given_no_broker_answering_then_the_demo_says_so_and_runs_the_handler_in_process() -> None:
    # Given: a broker URL where nothing listens (with a password that must never be shown)
    url = f"amqp://someone:pw-not-to-show@127.0.0.1:{free_port()}//"
    # When
    done = run_demo(url)
    # Then: every result came back and the exit code is 0
    assert done.returncode == 0, done.stdout + done.stderr
    assert result_ids(done) == SAMPLE_IDS
    # And: one loud line says why there is no worker process, without the password
    [warning] = [line for line in done.stderr.splitlines() if line.startswith("warning:")]
    assert "no broker answered at amqp://someone:**@127.0.0.1" in warning
    assert "in this process, without a broker" in warning
    assert "pw-not-to-show" not in done.stdout + done.stderr
    assert "5 of 5 results" in done.stderr.splitlines()  # progress, as results came


@pytest.mark.integration
def test_given_rabbitmq_then_the_demo_runs_a_real_worker_and_never_shows_the_password(
    broker_url: str,
) -> None:
    # Given: a broker user of its own, so that its password is one to look for
    with broker_user() as user:
        host = urlsplit(broker_url)
        done = run_demo(user.url(host.hostname or "127.0.0.1", host.port or 5672), "--json")
    # Then
    assert done.returncode == 0, done.stdout + done.stderr
    assert sorted(line.split('"id": "')[1].split('"')[0] for line in done.stdout.splitlines()) == SAMPLE_IDS
    assert "waiting for the worker..." in done.stderr
    assert "5 of 5 results" in done.stderr.splitlines()
    assert user.password not in done.stdout + done.stderr


@pytest.mark.integration
def test_given_wrong_broker_credentials_then_the_demo_fails_with_one_line(broker_url: str) -> None:
    host = urlsplit(broker_url)
    done = run_demo(f"amqp://guest:wrong-pw-here@{host.hostname}:{host.port or 5672}//")
    assert done.returncode == 1
    assert done.stderr.startswith("Error: ") and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "refused the login" in done.stderr
    assert "wrong-pw-here" not in done.stderr


class _QueueNeverReady:
    def queue_ready(self) -> bool:
        return False


def test_given_a_worker_that_exits_early_then_the_demo_stops_at_once_showing_its_output(
    tmp_path: Path,
) -> None:
    # Given: a "worker" that says why it stops, and stops
    log_path = tmp_path / "worker.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-c", "print('Error: the broker refused a declaration'); raise SystemExit(3)"],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    process.wait(timeout=30)
    # When: the demo waits for it
    with pytest.raises(click.ClickException) as caught:
        demo._wait_for_worker(_QueueNeverReady(), process, log_path)  # type: ignore[arg-type]
    # Then: it stops without waiting out its timeout, showing the status and the end of the output
    assert "exited (status 3)" in caught.value.message
    assert "Error: the broker refused a declaration" in caught.value.message
