"""A fleet shares one quota per connection: four worker processes, Redis, two API clients with quotas.

Connection ``limited`` (learned rate) and connection ``other`` (configured ``rate_limit_per_s``) belong
to two emulator API clients with their own quotas.  Both get more requests than their quotas allow
at once.  Everything is asserted on counts from the emulator's request log, per quota window as the
emulator counts them (windows of one second from each client's first request): never on timings.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.support.amqp import AmqpTestClient
from tests.support.processes import WorkerFleet

pytestmark = pytest.mark.integration

LIMITED_QUOTA = 10  # per second, learned from x-ratelimit-limit
OTHER_QUOTA = 20  # per second; the connection configures 95 % of it
TOKEN_OPERATION = "Authorization_requestAccessToken"
CLIENTS = ("limited-client", "other-client")


@pytest.fixture
def connections_file(tmp_path: Path, emulator: Any) -> Path:
    """Two connections, each its own emulator API client with its own quota."""
    emulator.add_client("limited-client", "limited-secret", rate_limit=LIMITED_QUOTA, rate_window_s=1)
    emulator.add_client("other-client", "other-secret", rate_limit=OTHER_QUOTA, rate_window_s=1)
    path = tmp_path / "connections.toml"
    path.write_text(
        f'[connections.limited]\nendpoint_url = "{emulator.base_url}"\n'
        'client_id = "limited-client"\nclient_secret = "limited-secret"\n\n'
        f'[connections.other]\nendpoint_url = "{emulator.base_url}"\n'
        'client_id = "other-client"\nclient_secret = "other-secret"\n'
        f"rate_limit_per_s = {OTHER_QUOTA * 0.95}\n",
        encoding="utf-8",
    )
    return path


def calls_per_window(log: list[dict[str, Any]], client_id: str, window_s: float = 1.0) -> list[int]:
    """API calls (token requests aside) in each of the client's quota windows, from its first request on."""
    mine = [entry for entry in log if entry["client_id"] == client_id]
    start = min(entry["time"] for entry in mine)
    calls = [entry["time"] for entry in mine if entry["operation"] != TOKEN_OPERATION]
    windows = Counter(math.floor((at - start) / window_s) for at in calls)
    return [windows.get(index, 0) for index in range(max(windows) + 1)]


def _publish(amqp: AmqpTestClient, queue: str, documents: list[dict[str, Any]], per_connection: int) -> None:
    for index in range(per_connection):
        params = {"id": documents[index % len(documents)]["id"]}
        for connection in ("limited", "other"):
            request_id = f"{connection}-{index}"
            amqp.publish(
                queue,
                {
                    "id": request_id,
                    "connection": connection,
                    "operation": "documentsGetById",
                    "params": params,
                },
            )


def test_given_four_workers_then_each_connection_keeps_to_its_own_quota_and_neither_slows_the_other(
    fleet: WorkerFleet,
    amqp: AmqpTestClient,
    emulator: Any,
    queue_names: dict[str, str],
    redis_env: dict[str, str],
) -> None:
    # Given: four workers sharing Redis, and more requests for each connection than its quota serves at once
    documents = emulator.seed_documents(10)
    fleet.start(4, **redis_env)
    per_connection = 120
    _publish(amqp, queue_names["HYPATOS_REQUEST_QUEUE"], documents, per_connection)
    # When: the fleet has answered them all
    results = amqp.collect(queue_names["HYPATOS_RESULT_QUEUE"], 2 * per_connection, timeout_s=180)
    # Then: every request succeeded
    assert len(results) == 2 * per_connection, fleet.logs()[-3000:]
    assert Counter(r["status"] for _, r in results) == {"succeeded": 2 * per_connection}
    log = [entry for entry in emulator.requests() if entry["client_id"] in CLIENTS]
    api_calls = [entry for entry in log if entry["operation"] != TOKEN_OPERATION]
    refused = sum(entry["status"] == 429 for entry in api_calls)
    limited, other = (calls_per_window(log, client) for client in CLIENTS)
    report = f"calls per window: limited {limited}, other {other}; {refused} 429s of {len(api_calls)} calls"
    # ... with 429 answers under 1 % of the calls
    assert refused < 0.01 * len(api_calls), report
    # ... the limited connection at most at its quota in each window (one call of tolerance for the
    # windows' alignment), and near it while its backlog lasts
    assert max(limited) <= LIMITED_QUOTA + 1, report
    assert statistics.median(limited[1:-1]) >= 0.75 * LIMITED_QUOTA, report
    # ... and the other connection at its own rate at the same time, not slowed by the limited one
    assert max(other) <= OTHER_QUOTA + 1, report
    assert statistics.median(other[1:-1]) >= 0.75 * OTHER_QUOTA, report
    # ... while a request waiting for quota went back to the broker about once, not over and over
    deferrals = fleet.logs().count('"request_deferred"')
    assert deferrals <= 2 * per_connection, f"{deferrals} deferrals of {len(results)} requests; {report}"
