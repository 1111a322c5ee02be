"""``hypatos-worker health`` against a real broker, real worker processes and Redis, run as a probe would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pika
import pytest

from tests.support.amqp import AmqpTestClient, pika_parameters
from tests.support.metrics import free_port
from tests.support.processes import WorkerFleet
from worker.settings import WorkerSettings
from worker.tools.health import CHECK_NAMES, run_health

pytestmark = pytest.mark.integration


def health(env: dict[str, str], *args: str) -> tuple[int, dict[str, Any]]:
    """Run ``hypatos-worker health --json`` with `env` (as a container probe would); exit code and report."""
    done = subprocess.run(
        [sys.executable, "-m", "worker", "health", "--json", "--timeout", "5", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.stdout, done.stderr
    return done.returncode, json.loads(done.stdout)


def statuses(report: dict[str, Any]) -> dict[str, str]:
    return {check["name"]: check["status"] for check in report["checks"]}


def detail(report: dict[str, Any], name: str) -> str:
    return next(check["detail"] for check in report["checks"] if check["name"] == name)


def test_given_a_running_worker_with_redis_then_every_check_passes_and_the_exit_code_is_0(
    fleet: WorkerFleet, redis_env: dict[str, str]
) -> None:
    # Given: one worker consuming, sharing Redis
    fleet.start(1, **redis_env)
    # When: the probe runs with the worker's own settings
    code, report = health({**fleet.env, **redis_env})
    # Then: every check passed
    assert code == 0, report
    assert report["healthy"] is True
    assert statuses(report) == dict.fromkeys(CHECK_NAMES, "ok")
    assert detail(report, "workers").startswith("hypatos-")


def test_given_the_people_format_then_there_is_one_line_per_check_and_a_verdict(fleet: WorkerFleet) -> None:
    fleet.start(1)
    done = subprocess.run(
        [sys.executable, "-m", "worker", "health"],
        env={**os.environ, **fleet.env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    lines = done.stdout.strip().splitlines()
    assert done.returncode == 0, done.stdout + done.stderr
    assert [line.split()[1] for line in lines[:-1]] == list(CHECK_NAMES)
    assert lines[-1] == "healthy"
    assert lines[-2].startswith("skipped")  # redis: not configured


def test_given_a_broker_url_where_no_broker_listens_then_health_fails_without_showing_the_password(
    fleet: WorkerFleet,
) -> None:
    # Given: settings naming a port where nothing listens
    env = {**fleet.env, "HYPATOS_BROKER_URL": f"amqp://worker:s3cret-pw@127.0.0.1:{free_port()}//"}
    # When
    code, report = health(env)
    # Then: the broker check fails, the checks that need it are skipped, the password is masked
    assert code == 1
    assert report["healthy"] is False
    assert statuses(report)["broker"] == "failed"
    assert {statuses(report)[name] for name in ("request_queue", "consumers", "workers")} == {"skipped"}
    assert "s3cret-pw" not in json.dumps(report)
    assert "worker:**@" in detail(report, "broker")


def test_given_wrong_broker_credentials_then_the_broker_check_fails(fleet: WorkerFleet) -> None:
    parts = urlsplit(fleet.env["HYPATOS_BROKER_URL"])
    wrong = parts._replace(netloc=f"{parts.username or 'guest'}:nope@{parts.hostname}:{parts.port or 5672}")
    env = {**fleet.env, "HYPATOS_BROKER_URL": urlunsplit(wrong)}
    code, report = health(env, "--check", "broker")
    assert code == 1
    assert statuses(report) == {"broker": "failed"}
    assert "nope" not in json.dumps(report)


def test_given_a_request_queue_declared_classic_with_other_arguments_then_health_names_the_mismatch(
    broker_url: str, queue_names: dict[str, str], amqp: AmqpTestClient, connections_file: Path
) -> None:
    # Given: someone created the request queue as a plain classic queue
    queue = queue_names["HYPATOS_REQUEST_QUEUE"]
    amqp.channel.queue_declare(queue=queue, durable=True, arguments={"x-queue-type": "classic"})
    env = {
        **queue_names,
        "HYPATOS_BROKER_URL": broker_url,
        "HYPATOS_CONNECTIONS_FILE": str(connections_file),
        "HYPATOS_ALLOW_CUSTOM_ENDPOINTS": "1",
    }
    # When
    code, report = health(env, "--workers", "0")
    # Then: the request queue check fails naming the argument, and the queue is left as it was
    assert code == 1
    assert statuses(report)["request_queue"] == "failed"
    assert "inequivalent arg" in detail(report, "request_queue")
    connection = pika.BlockingConnection(pika_parameters(broker_url))
    try:
        channel = connection.channel()
        # still classic: declaring it as such again is accepted
        channel.queue_declare(queue=queue, durable=True, arguments={"x-queue-type": "classic"})
    finally:
        connection.close()


def test_given_no_request_queue_then_health_fails_and_does_not_create_it(
    broker_url: str, queue_names: dict[str, str], amqp: AmqpTestClient
) -> None:
    settings = WorkerSettings(
        **{k.removeprefix("HYPATOS_").lower(): v for k, v in queue_names.items()}, broker_url=broker_url
    )
    report = run_health(settings, only=["request_queue"], timeout_s=5)
    assert not report.healthy
    assert [c.status for c in report.checks] == ["ok", "failed"]  # broker, request_queue
    with pytest.raises(pika.exceptions.ChannelClosedByBroker):
        amqp.connection.channel().queue_declare(queue=queue_names["HYPATOS_REQUEST_QUEUE"], passive=True)


def test_given_the_queues_exist_but_no_worker_runs_then_consumers_and_workers_fail(
    fleet: WorkerFleet,
) -> None:
    # Given: the queues as a worker declares them, but no worker process
    fleet.declare_queues()
    # When
    code, report = health(fleet.env)
    # Then
    assert code == 1
    found = statuses(report)
    assert (found["broker"], found["request_queue"]) == ("ok", "ok")
    assert (found["consumers"], found["workers"]) == ("failed", "failed")
    assert "no worker consumes" in detail(report, "consumers")


def test_given_a_worker_that_stopped_then_health_fails(fleet: WorkerFleet) -> None:
    fleet.start(1)
    assert health(fleet.env, "--check", "workers")[0] == 0
    fleet.stop_all()
    code, report = health(fleet.env, "--check", "consumers", "--check", "workers")
    assert code == 1
    assert statuses(report)["consumers"] == "failed"


def test_given_a_connections_file_whose_secret_file_is_missing_then_the_connections_check_fails(
    tmp_path: Path,
) -> None:
    path = tmp_path / "connections.toml"
    path.write_text('[connections.acme]\nclient_id = "id"\nclient_secret_file = "missing-secret"\n')
    code, report = health({"HYPATOS_CONNECTIONS_FILE": str(path)}, "--check", "connections")
    assert code == 1
    assert statuses(report) == {"connections": "failed"}
    assert "acme" in detail(report, "connections")


def test_given_redis_configured_but_not_listening_then_the_redis_check_fails(connections_file: Path) -> None:
    url = f"redis://:redis-pw@127.0.0.1:{free_port()}/0"
    code, report = health({"HYPATOS_REDIS_URL": url}, "--check", "redis")
    assert code == 1
    assert statuses(report) == {"redis": "failed"}
    assert "redis-pw" not in json.dumps(report)


def test_given_an_unknown_check_name_then_it_is_a_usage_error() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "worker", "health", "--check", "disk"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "unknown check" in done.stderr
