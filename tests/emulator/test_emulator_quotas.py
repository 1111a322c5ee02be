"""Per-client quotas and the record of how each client used them, window by window.

The windows here are a minute long and the tests move the emulator's clock, so no burst can
straddle a window boundary however slow the machine is; one-second windows work the same way.
"""

from __future__ import annotations

import json
import urllib.request

from emulator.testing import EmulatorServer
from tests.emulator.helpers import Api

QUOTA_HEADERS = {"x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset"}
WINDOW_S = 60


def _client(server: EmulatorServer, client_id: str, rate_limit: int) -> Api:
    server.add_client(client_id, f"{client_id}-secret", rate_limit=rate_limit, rate_window_s=WINDOW_S)
    api = Api(server)
    api.fetch_token(client_id=client_id, secret=f"{client_id}-secret")
    return api


def test_given_two_clients_with_their_own_quotas_then_calls_and_429s_are_reported_per_window(
    server: EmulatorServer,
) -> None:
    slow, fast = _client(server, "fleet-a", 20), _client(server, "fleet-b", 50)
    replies = [slow.get("/documents") for _ in range(24)] + [fast.get("/documents") for _ in range(54)]
    assert all(set(r.headers) >= QUOTA_HEADERS for r in replies)
    assert [r.status for r in replies[:24]] == [200] * 19 + [429] * 5  # the token request took one
    assert replies[0].headers["x-ratelimit-limit"] == "20, 20;w=60"
    assert replies[24].headers["x-ratelimit-limit"] == "50, 50;w=60"

    server.advance_clock(WINDOW_S)
    assert slow.get("/documents").headers["x-ratelimit-remaining"] == "19"
    server.advance_clock(5 * WINDOW_S)
    for _ in range(3):
        fast.get("/documents")

    usage = server.quotas()
    a, b = usage["fleet-a"], usage["fleet-b"]
    assert (a["limit"], a["window_s"], a["calls"], a["rate_limited"]) == (20, WINDOW_S, 26, 5)
    assert [(w["calls"], w["rate_limited"], w["limit"]) for w in a["windows"]] == [(25, 5, 20), (1, 0, 20)]
    assert a["windows"][1]["start"] - a["windows"][0]["start"] == WINDOW_S
    assert (b["limit"], b["calls"], b["rate_limited"]) == (50, 58, 5)
    assert [(w["calls"], w["rate_limited"]) for w in b["windows"]] == [(55, 5), (3, 0)]
    assert all(w["calls"] - w["rate_limited"] <= w["limit"] for c in (a, b) for w in c["windows"])
    assert server.counters()["rate_limited"] == 10


def test_given_calls_that_name_no_client_then_they_share_the_anonymous_quota(server: EmulatorServer) -> None:
    api = Api(server)
    api.get("/documents", headers={"Authorization": "Bearer nobody"})
    api.token_request(client_id="unknown-client")
    assert server.quotas()["-"]["calls"] == 2


def test_given_the_admin_api_then_quotas_read_and_clear_over_http(server: EmulatorServer) -> None:
    api = _client(server, "fleet-a", 20)
    api.get("/documents")
    with urllib.request.urlopen(server.admin_url + "/quotas?clear=1", timeout=10) as resp:
        usage = json.load(resp)
    assert usage["fleet-a"]["calls"] == 2 and usage["fleet-a"]["windows"][0]["calls"] == 2
    cleared = server.quotas()["fleet-a"]
    assert (cleared["calls"], cleared["windows"]) == (0, [])
    reply = api.get("/documents")
    assert reply.headers["x-ratelimit-remaining"] == "17"  # clearing the report leaves the quota alone
    assert server.quotas()["fleet-a"]["windows"][0]["calls"] == 1
