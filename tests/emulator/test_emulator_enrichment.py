"""Enrichment upserts keyed by externalId, deletes with lineNumber, and the 422/404 bodies."""

from __future__ import annotations

import re

import pytest

from emulator.state.enrichment import KINDS
from emulator.testing import EmulatorServer
from tests.emulator.helpers import Api

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
MINIMAL = {
    "approvers": {"externalId": "A1"},
    "companies": {"externalId": "C1", "name": "Acme"},
    "cost-centers": {"externalId": "CC1", "code": "CC 1"},
    "customers": {"externalId": "CU1", "name": "Acme"},
    "gl-accounts": {"externalId": "GL1", "code": "4711"},
    "invoices": {
        "externalId": "I1",
        "documentId": "63cac12c37bb02accb396cae",
        "invoiceLines": [{"externalId": "L1"}, {"externalId": "L2"}],
    },
    "purchase-orders": {
        "externalId": "P1",
        "purchaseOrderLines": [{"purchaseOrderLineNumber": "10"}, {"purchaseOrderLineNumber": "20"}],
    },
    "suppliers": {"externalId": "S1", "name": "Acme"},
}


@pytest.mark.parametrize("kind", KINDS)
def test_upsert_and_delete(server: EmulatorServer, api: Api, kind: str) -> None:
    first = api.post_json(f"/enrichment/{kind}", MINIMAL[kind])
    assert first.status == 200 and UUID.match(first.json()["id"])
    changed = {**MINIMAL[kind], "customFields": {"a": "b"}}
    assert api.post_json(f"/enrichment/{kind}", changed).json()["id"] == first.json()["id"]
    records = server.enrichment(kind)
    assert len(records) == 1 and records[0]["payload"] == changed  # full replace
    external_id = MINIMAL[kind]["externalId"]
    deleted = api.delete(f"/enrichment/{kind}/{external_id}")
    assert deleted.status == 204 and deleted.body == b""
    missing = api.delete(f"/enrichment/{kind}/{external_id}")
    assert missing.status == 404 and missing.json() == {"title": "Not found", "status": 404}
    assert api.post_json(f"/enrichment/{kind}", MINIMAL[kind]).json()["id"] == first.json()["id"]


@pytest.mark.parametrize("kind", KINDS)
def test_validation_errors(api: Api, kind: str) -> None:
    reply = api.post_json(f"/enrichment/{kind}", {"unrelated": True})
    assert reply.status == 422
    detail = reply.json()["detail"]
    assert detail and all(set(item) == {"loc", "msg", "type"} for item in detail)
    assert ["body", "externalId"] in [item["loc"] for item in detail]
    assert all(isinstance(part, str) for item in detail for part in item["loc"])


def test_invoice_rules(api: Api) -> None:
    no_reference = {"externalId": "I2", "invoiceLines": [{}]}
    reply = api.post_json("/enrichment/invoices", no_reference)
    assert reply.status == 422 and "documentId" in reply.json()["detail"][0]["msg"]
    bad_line = {**MINIMAL["invoices"], "invoiceLines": [{"quantity": "two"}]}
    assert api.post_json("/enrichment/invoices", bad_line).json()["detail"][0]["loc"] == [
        "body",
        "invoiceLines",
        "0",
        "quantity",
    ]
    broken = api.request("POST", "/enrichment/invoices", b"{", headers={"Content-Type": "application/json"})
    assert broken.status == 422


@pytest.mark.parametrize(("kind", "line"), [("invoices", "L2"), ("purchase-orders", "20")])
def test_line_deletes(server: EmulatorServer, api: Api, kind: str, line: str) -> None:
    api.post_json(f"/enrichment/{kind}", MINIMAL[kind])
    external_id = MINIMAL[kind]["externalId"]
    assert api.delete(f"/enrichment/{kind}/{external_id}?lineNumber={line}").status == 204
    assert api.delete(f"/enrichment/{kind}/{external_id}?lineNumber={line}").status == 404
    assert api.delete(f"/enrichment/{kind}/{external_id}?lineNumber=999").status == 404
    record = server.enrichment(kind)[0]
    assert record["deletedLines"] == [line] and not record["deleted"]
    assert api.delete(f"/enrichment/{kind}/{external_id}").status == 204


def test_invoice_lines_without_external_id_are_numbered_by_position(server: EmulatorServer, api: Api) -> None:
    payload = {**MINIMAL["invoices"], "invoiceLines": [{"quantity": 1}, {"quantity": 2}]}
    api.post_json("/enrichment/invoices", payload)
    assert api.delete("/enrichment/invoices/I1?lineNumber=2").status == 204
    assert api.delete("/enrichment/invoices/I1?lineNumber=3").status == 404


def test_company_header_scopes_records(server: EmulatorServer, api: Api) -> None:
    header = {"X-Hy-Meta-Internal-Company-Id": "DE01"}
    plain = api.post_json("/enrichment/suppliers", MINIMAL["suppliers"]).json()["id"]
    scoped = api.post_json("/enrichment/suppliers", MINIMAL["suppliers"], headers=header).json()["id"]
    assert plain != scoped
    assert api.delete("/enrichment/suppliers/S1", headers=header).status == 204
    assert api.delete("/enrichment/suppliers/S1", headers=header).status == 404
    assert api.delete("/enrichment/suppliers/S1").status == 204
    assert {r["companyId"] for r in server.enrichment("suppliers")} == {None, "DE01"}
