"""Faults on demand: latency, injected 5xx, dropped connections, slow/failing token endpoint."""

from __future__ import annotations

import http.client
import time
import urllib.error
from collections.abc import Callable

import pytest

from emulator.testing import EmulatorServer
from tests.emulator.helpers import Api

DISCONNECTED = (ConnectionError, http.client.HTTPException, urllib.error.URLError)


def _elapsed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def test_latency_and_jitter(server: EmulatorServer, api: Api) -> None:
    api.fetch_token()
    server.set_faults(latency_ms=150)
    assert _elapsed(lambda: api.get("/documents")) >= 0.15
    server.set_faults(latency_ms=0, jitter_ms=0)
    assert _elapsed(lambda: api.get("/documents")) < 0.15
    server.set_faults(latency_ms=0, jitter_ms=100)
    assert max(_elapsed(lambda: api.get("/documents")) for _ in range(5)) < 0.5


def test_injected_errors_and_their_bodies(server: EmulatorServer, api: Api) -> None:
    api.fetch_token()
    server.set_faults(error_rate=1.0, error_statuses=[500])
    reply = api.get("/documents")
    assert reply.status == 500 and reply.json()["status"] == 500
    assert "x-ratelimit-remaining" in reply.headers
    server.set_faults(error_statuses=[502, 503])
    statuses = set()
    for _ in range(20):
        reply = api.get("/documents")
        statuses.add(reply.status)
        assert reply.headers["content-type"].startswith("text/html")  # the gateway answers, not the API
    assert statuses == {502, 503}
    assert server.counters()["injected_errors"] == 21
    assert api.token_request().status == 200  # the token endpoint has its own knobs


def test_error_share_is_roughly_respected(server: EmulatorServer, api: Api) -> None:
    api.fetch_token()
    server.set_faults(error_rate=0.3)
    failures = sum(api.get("/documents").status >= 500 for _ in range(200))
    assert 25 <= failures <= 95


def test_fault_operations_filter(server: EmulatorServer, api: Api) -> None:
    doc_id = server.seed_documents(1)[0]["id"]
    api.fetch_token()
    server.set_faults(error_rate=1.0, fault_operations=["Documents_getById"])
    assert api.get("/documents").status == 200
    assert api.get(f"/documents/{doc_id}").status >= 500


def test_dropped_connections_before_and_after(server: EmulatorServer, api: Api) -> None:
    project = server.seed_project()
    file_id = server.seed_file(b"%PDF-1.4 drop", filename="d.pdf")["id"]
    api.fetch_token()
    server.set_faults(drop_rate=1.0)
    with pytest.raises(DISCONNECTED):
        api.post_json("/documents/process-file", {"fileId": file_id, "projectId": project["id"]})
    server.set_faults(drop_rate=0.0)
    assert api.get("/documents").json()["totalCount"] == 0  # dropped before processing
    server.set_faults(drop_rate=1.0, drop_when="after")
    with pytest.raises(DISCONNECTED):
        api.post_json("/documents/process-file", {"fileId": file_id, "projectId": project["id"]})
    server.set_faults(drop_rate=0.0)
    assert api.get("/documents").json()["totalCount"] == 1  # processed, but the answer was lost
    counters = server.counters()
    assert counters["dropped"] == 2
    assert [
        e["status"] for e in server.requests() if e["operation"] == "Documents_processFileIntoDocument"
    ] == [0, 0]


def test_slow_and_failing_token_endpoint(server: EmulatorServer, api: Api) -> None:
    server.set_faults(token_latency_ms=200)
    assert _elapsed(lambda: api.token_request()) >= 0.2
    server.set_faults(token_latency_ms=0, token_error_rate=1.0)
    assert api.token_request().status >= 500
    server.set_faults(token_error_rate=0.0)
    assert api.token_request().status == 200


def test_invalid_settings_are_rejected_atomically(server: EmulatorServer) -> None:
    before = server.faults()
    for bad in (
        {"error_rate": 2},
        {"latency_ms": -1},
        {"nope": 1},
        {"error_statuses": [404]},
        {"drop_when": "during"},
        {"latency_ms": 5, "rate_limit": 0},
    ):
        with pytest.raises(ValueError):
            server.set_faults(**bad)
    assert server.faults() == before
    with pytest.raises(TypeError):
        EmulatorServer(bogus=1)
