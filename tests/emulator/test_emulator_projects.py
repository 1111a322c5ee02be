"""Projects (create, get, list with search/sort/paging, schema) and companies."""

from __future__ import annotations

from typing import Any

from emulator.testing import EmulatorServer
from tests.emulator.helpers import Api

VALID: dict[str, Any] = {
    "name": "AP invoices",
    "extractionModelId": "63e6663823b4c1f5287398bb",
    "ocr": {"engine": "google", "features": ["barcodes"]},
    "members": {"allow": "all"},
}


def test_create_applies_spec_defaults(api: Api) -> None:
    reply = api.post_json("/projects", VALID)
    assert reply.status == 201
    project = reply.json()
    assert project["completion"] == "manual" and project["duplicates"] == "fail"
    assert len(project["id"]) == 24 and project["createdBy"] == project["updatedBy"]
    assert api.get(f"/projects/{project['id']}").json() == project


def test_create_validation(api: Api) -> None:
    cases = [
        {**VALID, "name": ""},
        {**VALID, "name": "n" * 61},
        {**VALID, "ocr": {"engine": "abbyy", "features": [], "languages": []}},
        {**VALID, "ocr": {"engine": "tesseract", "features": []}},
        {**VALID, "completion": "sometimes"},
        {k: v for k, v in VALID.items() if k != "members"},
    ]
    for payload in cases:
        reply = api.post_json("/projects", payload)
        assert reply.status == 422, payload
        assert reply.json()["title"] == "Request validation error" and reply.json()["status"] == 422
    bad = api.request("POST", "/projects", b"not json", headers={"Content-Type": "application/json"})
    assert bad.status == 400 and bad.json()["title"] == "Payload data is invalid"


def test_list_search_sort_and_paging(server: EmulatorServer, api: Api) -> None:
    names = ["Alpha invoices", "Beta receipts", "Gamma invoices"]
    created = [api.post_json("/projects", {**VALID, "name": n}).json() for n in names]
    listing = api.get("/projects").json()
    assert [p["name"] for p in listing["data"]] == names[::-1] and listing["totalCount"] == 3
    assert [p["name"] for p in api.get("/projects?sort=%2BcreatedAt").json()["data"]] == names
    assert [p["name"] for p in api.get("/projects?search=INVOICES").json()["data"]] == [
        "Gamma invoices",
        "Alpha invoices",
    ]
    assert api.get(f"/projects?search={created[1]['id']}").json()["totalCount"] == 1
    page = api.get("/projects?limit=1&offset=1").json()
    assert (page["limit"], page["offset"], len(page["data"])) == (1, 1, 1)
    assert api.get("/projects?limit=99").json()["limit"] == 50
    assert api.get("/projects?limit=-1").status == 422
    assert api.get("/projects?sort=name").status == 422


def test_schema_and_not_found(server: EmulatorServer, api: Api) -> None:
    project = api.post_json("/projects", VALID).json()
    schema = api.get(f"/projects/{project['id']}/schema").json()
    assert {p["internalName"] for p in schema["dataPoints"]} >= {"number", "issuedAt", "currency"}
    custom = {"version": 2, "dataPoints": [{"internalName": "x", "displayName": "X", "type": "string"}]}
    with_schema = api.post_json("/projects", {**VALID, "schema": custom}).json()
    assert api.get(f"/projects/{with_schema['id']}/schema").json() == custom
    assert "schema" not in with_schema
    assert api.get("/projects/63e6663823b4c1f5287398bb").status == 404
    assert api.get("/projects/63e6663823b4c1f5287398bb/schema").status == 404
    assert api.get("/projects/bad/schema").status == 400


def test_companies(server: EmulatorServer, api: Api) -> None:
    assert api.get("/companies").json() == {"data": [], "limit": 0, "offset": 0, "totalCount": 0}
    company = server.seed_company("Buyer AG", active=False)
    assert api.get(f"/companies/{company['id']}").json() == company
    assert set(company) == {"id", "name", "active", "createdAt"}
    assert api.get("/companies").json()["data"] == [company]
    assert api.get("/companies/nope").status == 400
    assert api.get("/companies/000000000000000000000000").status == 404
