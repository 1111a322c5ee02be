"""Starting workers: a fatal misconfiguration ends `run` at once with one line saying what to fix; a
healthy start with `--processes` runs one consumer per process and stops as one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from urllib.parse import urlsplit, urlunsplit

import pytest

from tests.support.amqp import AmqpTestClient
from tests.support.delivery import wait_for_exit
from tests.support.processes import WorkerFleet

pytestmark = pytest.mark.integration


def run_worker(env: dict[str, str], *args: str, timeout_s: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "worker", "run", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


def with_url(env: dict[str, str], **parts: str) -> dict[str, str]:
    url = urlsplit(env["HYPATOS_BROKER_URL"])
    netloc = (
        f"{parts.get('user', url.username)}:{parts.get('password', url.password)}@{url.hostname}:{url.port}"
    )
    return {
        **env,
        "HYPATOS_BROKER_URL": urlunsplit((url.scheme, netloc, parts.get("path", url.path), "", "")),
    }


def assert_one_line_failure(done: subprocess.CompletedProcess[str], *phrases: str) -> None:
    assert done.returncode != 0, done
    errors = [line for line in done.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, done.stderr[-2000:]
    for phrase in phrases:
        assert phrase in errors[0], errors[0]
    assert "password" not in errors[0] or "wrong-password" not in errors[0]


def test_given_a_wrong_broker_password_then_run_exits_non_zero_with_one_line(fleet: WorkerFleet) -> None:
    started = time.monotonic()
    done = run_worker(with_url(fleet.env, password="wrong-password"))
    assert_one_line_failure(done, "refused the login", "HYPATOS_BROKER_URL")
    assert time.monotonic() - started < 25


def test_given_a_vhost_that_does_not_exist_then_run_exits_non_zero_with_one_line(fleet: WorkerFleet) -> None:
    done = run_worker(with_url(fleet.env, path="/no-such-vhost"))
    assert_one_line_failure(done, "no-such-vhost")


def test_given_the_request_queue_declared_with_other_arguments_then_run_exits_non_zero_saying_so(
    fleet: WorkerFleet, amqp: AmqpTestClient
) -> None:
    amqp.channel.queue_declare(queue=fleet.env["HYPATOS_REQUEST_QUEUE"], durable=True)  # a classic queue
    done = run_worker(fleet.env)
    assert_one_line_failure(done, fleet.env["HYPATOS_REQUEST_QUEUE"], "arguments")


def test_given_two_processes_then_both_consume_and_sigterm_stops_them_as_one(
    fleet: WorkerFleet, amqp: AmqpTestClient
) -> None:
    supervisor = subprocess.Popen(
        [sys.executable, "-m", "worker", "run", "--processes", "2"],
        env={**os.environ, **fleet.env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        amqp.wait_for_consumers(fleet.env["HYPATOS_REQUEST_QUEUE"], 2)
        supervisor.send_signal(signal.SIGTERM)
        assert wait_for_exit(supervisor, 40) == 0
        assert amqp.message_count(fleet.env["HYPATOS_REQUEST_QUEUE"]) == 0
    finally:
        if supervisor.poll() is None:
            supervisor.kill()
