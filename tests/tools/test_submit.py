"""Submitting requests: never reported sent when no queue took them; ``submit --wait`` round trips."""

from __future__ import annotations

import json
import re
import subprocess
import threading
import time
from urllib.parse import urlsplit

import pytest
from kombu import Connection

from tests.support.amqp import AmqpTestClient
from tests.support.broker_users import broker_user
from tests.support.delivery import run_cli
from tests.support.processes import WorkerFleet
from worker.queues import declare_topology
from worker.settings import WorkerSettings
from worker.tools.queue_client import HypatosQueueClient, NotRouted

pytestmark = pytest.mark.integration


def hypatos_worker(
    env: dict[str, str], *args: str, timeout_s: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run ``hypatos-worker ARGS`` as a user would, with `env` on top of this environment."""
    return run_cli(env, *args, timeout_s=timeout_s)


REQUEST = {"id": "r-1", "connection": "main", "operation": "companiesList"}


def test_given_no_request_queue_then_submit_raises_instead_of_losing_the_request(
    broker_url: str, queue_names: dict[str, str]
) -> None:
    # Given: nobody has declared the request queue yet
    with HypatosQueueClient(broker_url, request_queue=queue_names["HYPATOS_REQUEST_QUEUE"]) as client:
        # When / Then: the publish is refused, naming the queue
        with pytest.raises(NotRouted, match=queue_names["HYPATOS_REQUEST_QUEUE"]):
            client.submit(REQUEST)
        # And the client still works for the next request
        with pytest.raises(NotRouted):
            client.submit(REQUEST)


def test_given_no_request_queue_then_the_submit_command_fails_with_one_line(
    fleet: WorkerFleet, amqp: AmqpTestClient
) -> None:
    done = hypatos_worker(fleet.env, "submit", "companiesList", "--connection", "main")
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, done.stderr
    assert fleet.env["HYPATOS_REQUEST_QUEUE"] in errors[0] and "not delivered" in errors[0]
    assert done.stdout == ""


def declare_like_a_worker(env: dict[str, str]) -> None:
    """The queues and exchanges a worker with `env` declares at start."""
    settings = WorkerSettings(**{key.removeprefix("HYPATOS_").lower(): value for key, value in env.items()})
    with Connection(settings.broker_url) as connection:
        declare_topology(connection, settings)


def test_given_wait_for_queue_then_submit_sends_once_a_worker_declared_the_queue(
    fleet: WorkerFleet, amqp: AmqpTestClient, broker_url: str
) -> None:
    # Given: the queue appears a moment after the client starts sending
    declare_later = threading.Timer(1.0, declare_like_a_worker, args=(fleet.env,))
    declare_later.start()
    try:
        with HypatosQueueClient(broker_url, request_queue=fleet.env["HYPATOS_REQUEST_QUEUE"]) as client:
            # When
            client.submit(REQUEST, wait_for_queue_s=60)
    finally:
        declare_later.join()
    # Then: the request is in the queue, once
    assert amqp.message_count(fleet.env["HYPATOS_REQUEST_QUEUE"]) == 1


def test_given_a_worker_then_submit_wait_prints_the_result_and_the_exit_code_says_how_it_went(
    fleet: WorkerFleet, emulator
) -> None:
    # Given: one worker and a document in the emulator
    document = emulator.seed_documents(1)[0]
    fleet.start(1)
    # When: a request that succeeds is sent with --wait
    done = hypatos_worker(
        fleet.env,
        "submit",
        "documentsGetById",
        "--connection",
        "main",
        "--param",
        f"id={document['id']}",
        "--wait",
        "--timeout",
        "60",
    )
    # Then: its result is printed and the exit code is 0
    assert done.returncode == 0, done.stderr + fleet.logs()[-2000:]
    result = json.loads(done.stdout)
    assert result["status"] == "succeeded" and result["data"]["id"] == document["id"]
    # When: one that fails is sent (no such document), with an id of the caller's
    done = hypatos_worker(
        fleet.env,
        "submit",
        "documentsGetById",
        "--connection",
        "main",
        "--id",
        "missing-1",
        "--param",
        f"id={'0' * 24}",
        "--wait",
    )
    # Then: its failed result is printed and the exit code is not 0
    assert done.returncode == 1, done.stderr
    result = json.loads(done.stdout)
    assert result["id"] == "missing-1" and result["status"] == "failed"
    assert result["error"]["code"] == "not_found"


def test_given_a_producer_user_allowed_only_the_request_exchange_then_submit_wait_works(
    fleet: WorkerFleet, broker_url: str
) -> None:
    # Given: a broker user with the permissions the README gives producers (write: the request
    # exchange only; configure and read: its own reply queues, and read the result queue)
    fleet.start(1)
    env = fleet.env
    reply_queues = r"amq\.gen-.*|hypatos\.reply\..*"
    with broker_user(
        configure=f"^({reply_queues})$",
        write=f"^{re.escape(env['HYPATOS_REQUEST_QUEUE'])}$",
        read=f"^({re.escape(env['HYPATOS_RESULT_QUEUE'])}|{reply_queues})$",
    ) as producer:
        host = urlsplit(broker_url)
        url = producer.url(host.hostname or "127.0.0.1", host.port or 5672)
        producer_env = {**env, "HYPATOS_BROKER_URL": url}
        # When
        done = hypatos_worker(producer_env, "submit", "companiesList", "--connection", "main", "--wait")
    # Then
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["status"] == "succeeded"


def test_given_no_wait_then_submit_prints_the_id_and_the_result_goes_to_the_result_queue(
    fleet: WorkerFleet, amqp: AmqpTestClient
) -> None:
    fleet.start(1)
    done = hypatos_worker(
        fleet.env,
        "submit",
        "documentsList",
        "--connection",
        "main",
        "--param",
        "limit=2",
        "--param",
        "state=done",
        "--param",
        "state=doneAutomatically",
    )
    assert done.returncode == 0, done.stderr
    request_id = done.stdout.strip()
    [(properties, result)] = amqp.collect(fleet.env["HYPATOS_RESULT_QUEUE"], 1, timeout_s=60)
    assert result["id"] == request_id and properties.correlation_id == request_id
    assert result["status"] == "succeeded", result


def test_given_no_request_queue_then_dead_letters_replay_keeps_the_message_and_says_why(
    fleet: WorkerFleet, amqp: AmqpTestClient
) -> None:
    # Given: a dead request, and no request queue to send it back to
    dead = fleet.env["HYPATOS_DEAD_LETTER_QUEUE"]
    amqp.channel.queue_declare(queue=dead, durable=True, arguments={"x-queue-type": "quorum"})
    amqp.publish(dead, REQUEST)
    # When
    done = hypatos_worker(fleet.env, "dead-letters", "replay")
    # Then: one line saying the request queue is missing, and the dead message is still there
    assert done.returncode == 1
    assert [line for line in done.stderr.splitlines() if line.startswith("Error:")], done.stderr
    assert "Traceback" not in done.stderr
    assert fleet.env["HYPATOS_REQUEST_QUEUE"] in done.stderr
    deadline = time.monotonic() + 10
    while amqp.message_count(dead) != 1 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert amqp.message_count(dead) == 1
