"""First checks of the harness: token, documents get/list, counters, request log, faults."""

from __future__ import annotations

import json

from emulator.testing import EmulatorServer


def test_token_then_get_document(server: EmulatorServer, api) -> None:
    doc = server.seed_documents(1, state="done")[0]
    reply = api.get(f"/documents/{doc['id']}")
    assert reply.status == 200
    body = reply.json()
    assert body["id"] == doc["id"] and body["state"] == "done"
    assert body["entities"]["type"] == "invoice"
    assert {"x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset"} <= set(reply.headers)


def test_list_paging_and_filters(server: EmulatorServer, api) -> None:
    server.seed_documents(3, state="done")  # creates the default project
    project = server.seed_project(name="Other")
    server.seed_documents(2, project_id=project["id"], state="failed")
    page = api.get("/documents?limit=2").json()
    assert page["totalCount"] == 5 and page["limit"] == 2 and len(page["data"]) == 2
    assert api.get(f"/documents?projectId={project['id']}").json()["totalCount"] == 2
    assert api.get("/documents?state=failed&state=done").json()["totalCount"] == 5
    assert api.get("/documents?limit=500").json()["limit"] == 50
    assert api.get("/documents?limit=-1").status == 400
    assert api.get("/documents?offset=-1").status == 400


def test_counters_and_request_log(server: EmulatorServer, api) -> None:
    api.get("/documents")
    counters = server.counters()
    assert counters["token_requests"] == 1
    assert counters["token_requests_by_client"] == {"test-client": 1}
    assert counters["operations"]["Documents_getList"] == 1
    entries = server.requests(clear=True)
    assert [e["operation"] for e in entries] == ["Authorization_requestAccessToken", "Documents_getList"]
    assert entries[0]["body"] == "grant_type=client_credentials"
    assert server.requests() == []
    server.reset_counters()
    assert server.counters()["operations"] == {}


def test_revoke_and_faults(server: EmulatorServer, api) -> None:
    assert api.get("/documents").status == 200
    assert server.revoke_tokens() == 1
    assert api.get("/documents").status == 401
    api.fetch_token()
    server.set_faults(error_rate=1.0, error_statuses=[503])
    reply = api.get("/documents")
    assert reply.status == 503 and "x-ratelimit-remaining" in reply.headers
    assert server.counters()["injected_errors"] == 1
    server.set_faults(error_rate=0.0)
    assert api.get("/documents").status == 200
    assert json.loads(json.dumps(server.faults()))["error_rate"] == 0.0
