"""``hypatos-worker results``: prints the results in a result queue, acknowledging each one."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from typing import Any

import pytest

from tests.support.amqp import AmqpTestClient
from tests.support.delivery import wait_for_exit
from tests.support.processes import WorkerFleet

pytestmark = pytest.mark.integration


def result(request_id: str, status: str = "succeeded") -> dict[str, Any]:
    return {
        "id": request_id,
        "connection": "main",
        "operation": "companiesList",
        "status": status,
        "http_status": 200,
        "data": {"data": []},
        "error": None,
        "attempts": 1,
        "duration_ms": 3.0,
    }


def results_command(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "worker", "results", *args],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_given_results_waiting_then_results_prints_them_acknowledged_and_stops(
    fleet: WorkerFleet, amqp: AmqpTestClient
) -> None:
    # Given: two results in the result queue
    fleet.declare_queues()
    queue = fleet.env["HYPATOS_RESULT_QUEUE"]
    for request_id in ("a-1", "a-2"):
        amqp.publish(queue, result(request_id))
    # When: results runs without --follow
    command = results_command(fleet.env, "--json")
    stdout, stderr = command.communicate(timeout=60)
    # Then: it printed both, one JSON object per line, took them off the queue, and stopped with 0
    assert command.returncode == 0, stderr
    assert [json.loads(line)["id"] for line in stdout.splitlines()] == ["a-1", "a-2"]
    assert amqp.message_count(queue) == 0


def test_given_follow_then_results_are_printed_as_they_arrive_until_sigterm(
    fleet: WorkerFleet, amqp: AmqpTestClient, emulator
) -> None:
    # Given: a worker, and results --follow reading its result queue
    document = emulator.seed_documents(1)[0]
    fleet.start(1)
    follower = results_command(fleet.env, "--follow")
    try:
        # When: requests are answered while it runs (one succeeds, one fails)
        request_queue = fleet.env["HYPATOS_REQUEST_QUEUE"]
        amqp.publish(
            request_queue,
            {
                "id": "f-1",
                "connection": "main",
                "operation": "documentsGetById",
                "params": {"id": document["id"]},
            },
        )
        amqp.publish(request_queue, {"id": "f-2", "connection": "nobody", "operation": "companiesList"})
        assert follower.stdout is not None
        lines = [follower.stdout.readline() for _ in range(2)]
        # Then: one line per result, for people
        by_id = {line.split()[0]: line for line in lines}
        assert set(by_id) == {"f-1", "f-2"}, lines
        assert "succeeded" in by_id["f-1"] and "HTTP 200" in by_id["f-1"]
        assert "failed" in by_id["f-2"] and "unknown_connection" in by_id["f-2"]
        # And: SIGTERM ends it with 0, having acknowledged what it printed
        follower.send_signal(signal.SIGTERM)
        assert wait_for_exit(follower, 30) == 0
        assert amqp.message_count(fleet.env["HYPATOS_RESULT_QUEUE"]) == 0
    finally:
        if follower.poll() is None:
            follower.kill()
        follower.wait(timeout=10)


def test_given_a_queue_that_does_not_exist_then_results_fails_with_one_line(
    fleet: WorkerFleet, amqp: AmqpTestClient
) -> None:
    command = results_command(fleet.env, "--queue", f"{fleet.env['HYPATOS_RESULT_QUEUE']}.missing")
    _, stderr = command.communicate(timeout=60)
    assert command.returncode == 1
    assert stderr.startswith("Error: ") and len(stderr.strip().splitlines()) == 1, stderr
    assert "has no queue named" in stderr
