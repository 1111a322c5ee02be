"""testConnection on the queue with a real worker process: one check serves a burst of requests."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.amqp import AmqpTestClient
from tests.support.processes import WorkerFleet

pytestmark = pytest.mark.integration


def _test_connection(index: int) -> dict[str, Any]:
    return {"id": f"tc-{index}", "connection": "main", "operation": "testConnection"}


def test_given_a_burst_of_test_connection_requests_then_one_token_request_answers_them_all(
    fleet: WorkerFleet, amqp: AmqpTestClient, emulator: Any, queue_names: dict[str, str]
) -> None:
    # Given: one worker with the default interval (60 s)
    fleet.start(1)
    # When: twenty testConnection requests for one connection arrive together
    for index in range(20):
        amqp.publish(queue_names["HYPATOS_REQUEST_QUEUE"], _test_connection(index))
    results = [result for _, result in amqp.collect(queue_names["HYPATOS_RESULT_QUEUE"], 20, timeout_s=60)]
    # Then: all report a usable connection, from one check: one token request, one read call
    assert {result["status"] for result in results} == {"succeeded"}
    assert sorted(result["data"]["cached"] for result in results) == [False] + [True] * 19
    assert len({result["data"]["checked_at"] for result in results}) == 1
    assert sum(result["attempts"] for result in results) == 2
    assert emulator.counters()["token_requests"] == 1


def test_given_an_interval_of_zero_then_each_test_connection_request_checks_afresh(
    fleet: WorkerFleet, amqp: AmqpTestClient, emulator: Any, queue_names: dict[str, str]
) -> None:
    fleet.start(1, HYPATOS_TEST_CONNECTION_INTERVAL_S="0")
    for index in range(3):
        amqp.publish(queue_names["HYPATOS_REQUEST_QUEUE"], _test_connection(index))
    results = [result for _, result in amqp.collect(queue_names["HYPATOS_RESULT_QUEUE"], 3, timeout_s=60)]
    assert [result["data"]["cached"] for result in results] == [False] * 3
    assert emulator.counters()["token_requests"] == 3
