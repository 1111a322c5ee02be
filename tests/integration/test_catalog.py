"""Every operation of the catalog through the queue, checked at both ends.

Real worker processes take plain AMQP requests and call the emulator over HTTP; for each operation the
test checks the method, path, query, headers and body that reached the emulator and the result that
came back.  Invalid requests of each parameter kind get `validation_error` and cost no call.
"""

from __future__ import annotations

import base64
import copy
import json
from pathlib import Path
from typing import Any

import pytest

from tasks.catalog import CATALOG
from tests.support.amqp import AmqpTestClient
from tests.support.processes import WorkerFleet
from tests.tasks.test_bodies import VALID

pytestmark = pytest.mark.integration

PDF = b"%PDF-1.4\n" + b"0123456789" * 300 + b"\n%%EOF\n"
COMPANY_HEADER = "X-Hy-Meta-Internal-Company-Id"

#: Our operation name -> the vendor's operationId (what the emulator logs).
VENDOR_IDS = {
    "documentsGetById": "Documents_getById",
    "documentsList": "Documents_getList",
    "retrieveDocumentStates": "Documents_getDocumentStates",
    "documentUpdateExternalData": "Documents_updateExternalData",
    "documentsUpdateExternalId": "Documents_provideExternalId",
    "documentsUpdateTitle": "Documents_provideTitle",
    "documentsUpdateTransfer": "Documents_updateTransferInformation",
    "processFileIntoDocument": "Documents_processFileIntoDocument",
    "uploadFile": "Files_uploadFile",
    "retrieveFile": "Files_downloadById",
    "emailsContentGetByDocumentId": "Emails_getMergedContentById",
    "companiesGetById": "Companies_getById",
    "companiesList": "Companies_list",
    "projectsGetById": "Projects_getById",
    "projectsList": "Projects_listForGivenSearchCriteria",
    "schemasGetByProjectId": "Projects_getSchemaByProjectId",
    "projectsCreate": "Projects_createProject",
    "insertApprover": "Enrichment_insertApproverRecord",
    "insertCompany": "Enrichment_addCompanyData",
    "insertCostCenter": "Enrichment_insertCostCenter",
    "insertCustomer": "Enrichment_insertCustomer",
    "insertGLAccount": "Enrichment_insertGlAccount",
    "insertInvoice": "Enrichment_insertInvoiceIncludingInvoiceLines",
    "insertPurchaseOrder": "Enrichment_insertPurchaseOrder",
    "insertSupplier": "Enrichment_insertSupplierIncludingSubsidiaries",
    "deleteApprover": "Enrichment_markApproverDeleted",
    "deleteCompany": "Enrichment_markCompanyDeleted",
    "deleteCostCenter": "Enrichment_markCostCenterDeleted",
    "deleteCustomer": "Enrichment_markCustomerAsDeleted",
    "deleteGLAccount": "Enrichment_markGlAccountDeleted",
    "deleteInvoice": "Enrichment_markInvoiceDeleted",
    "deletePurchaseOrder": "Enrichment_markPurchaseOrderDeleted",
    "deleteSupplier": "Enrichment_markSupplierDeleted",
}


@pytest.fixture
def world(emulator: Any) -> dict[str, Any]:
    """What the requests refer to: a project, documents, a file and a company."""
    project = emulator.seed_project(name="Catalog test project")
    documents = emulator.seed_documents(3, project_id=project["id"], state="extracted")
    file = emulator.seed_file(PDF, "application/pdf", "invoice-äöü.pdf")
    upload_file = emulator.seed_file(PDF + b"x", "application/pdf", "to-process.pdf")
    company = emulator.seed_company("Catalog Buyer GmbH")
    return {
        "project": project,
        "documents": documents,
        "file": file,
        "company": company,
        "upload_file": upload_file,
    }


def _first_batch(world: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """One request per operation except the deletes (which need the inserts done first)."""
    doc = world["documents"]
    project_id = world["project"]["id"]
    requests: dict[str, dict[str, Any]] = {
        "documentsGetById": {"params": {"id": doc[0]["id"]}},
        "documentsList": {
            "params": {
                "projectId": [project_id],
                "state": ["extracted", "done"],
                "limit": 2,
                "offset": 0,
                "sort": "-createdAt",
            }
        },
        "retrieveDocumentStates": {"params": {"id": doc[0]["id"]}},
        "documentUpdateExternalData": {
            "params": {"id": doc[1]["id"]},
            "body": {"erpId": "4711", "paid": True},
        },
        "documentsUpdateExternalId": {"params": {"id": doc[1]["id"]}, "body": "ERP-4711"},
        "documentsUpdateTitle": {"params": {"id": doc[1]["id"]}, "body": "Rechnung 4711 / März"},
        "documentsUpdateTransfer": {
            "params": {"id": doc[2]["id"]},
            "body": {"successful": True, "message": "ok"},
        },
        "processFileIntoDocument": {
            "body": {"fileId": world["upload_file"]["id"], "projectId": project_id, "externalId": "ext-1"}
        },
        "uploadFile": {"file": {"base64": base64.b64encode(PDF).decode(), "filename": "scan €.pdf"}},
        "retrieveFile": {"params": {"id": world["file"]["id"]}, "output": "base64"},
        "emailsContentGetByDocumentId": {"params": {"id": doc[0]["id"]}},
        "companiesGetById": {"params": {"id": world["company"]["id"]}},
        "companiesList": {},
        "projectsGetById": {"params": {"id": project_id}},
        "projectsList": {"params": {"search": "Catalog", "limit": 10, "offset": 0, "sort": "+createdAt"}},
        "schemasGetByProjectId": {"params": {"id": project_id}},
        "projectsCreate": {"body": VALID["projectsCreate"]},
    }
    for name in (
        "Approver",
        "Company",
        "CostCenter",
        "Customer",
        "GLAccount",
        "Invoice",
        "PurchaseOrder",
        "Supplier",
    ):
        requests[f"insert{name}"] = {"body": copy.deepcopy(VALID[f"insert{name}"])}
    requests["insertSupplier"]["params"] = {COMPANY_HEADER: "DE01"}
    return requests


def _deletes() -> dict[str, dict[str, Any]]:
    deletes = {}
    for name in (
        "Approver",
        "Company",
        "CostCenter",
        "Customer",
        "GLAccount",
        "Invoice",
        "PurchaseOrder",
        "Supplier",
    ):
        deletes[f"delete{name}"] = {"params": {"externalId": VALID[f"insert{name}"]["externalId"]}}  # type: ignore[index]
    deletes["deleteSupplier"]["params"][COMPANY_HEADER] = "DE01"
    deletes["deleteInvoice"]["params"]["lineNumber"] = "00000001"
    deletes["deletePurchaseOrder"]["params"]["lineNumber"] = "00010"
    return deletes


def _send(amqp: AmqpTestClient, queues: dict[str, str], batch: dict[str, dict[str, Any]]) -> dict[str, Any]:
    for name, fields in batch.items():
        amqp.publish(
            queues["HYPATOS_REQUEST_QUEUE"],
            {"id": f"op-{name}", "connection": "main", "operation": name, **fields},
        )
    results = amqp.collect(queues["HYPATOS_RESULT_QUEUE"], len(batch), timeout_s=90)
    return {r["operation"]: r for _, r in results}


def _check_wire(call: dict[str, Any], name: str, fields: dict[str, Any], world: dict[str, Any]) -> None:
    """What reached the emulator matches the declaration and the request."""
    operation = CATALOG[name]
    assert call["method"] == operation.method
    params = fields.get("params", {})
    expected_path = "/v2" + operation.path.format(
        **{p.name: params.get(p.name) for p in operation.path_params}
    )
    assert call["path"] == expected_path
    for key, value in params.items():
        location = next(p.location for p in operation.params if p.name == key)
        if location == "query":
            assert call["query"][key] == [str(v) for v in (value if isinstance(value, list) else [value])]
        elif location == "header":
            assert call["headers"][key.lower()] == value
    assert call["headers"]["authorization"].startswith("Bearer ")
    body = fields.get("body")
    if isinstance(body, dict):
        assert call["headers"]["content-type"].startswith("application/json")
        assert json.loads(call["body"]) == body
    elif isinstance(body, str):
        assert call["headers"]["content-type"].startswith("text/plain")
        assert call["body"] == body


def test_every_operation_reaches_the_emulator_as_declared_and_returns_its_result(
    fleet: WorkerFleet,
    amqp: AmqpTestClient,
    emulator: Any,
    queue_names: dict[str, str],
    world: dict[str, Any],
    tmp_path: Path,
) -> None:
    # Given: one worker with an outbox folder
    outbox = tmp_path / "outbox"
    fleet.start(1, HYPATOS_OUTBOX_DIR=str(outbox))
    first, deletes = _first_batch(world), _deletes()
    # When: every operation is requested (the deletes after the inserts)
    results = _send(amqp, queue_names, first)
    results |= _send(amqp, queue_names, deletes)
    # Then: all 33 succeeded with the declared status
    assert sorted(results) == sorted(CATALOG)
    for name, result in results.items():
        assert result["status"] == "succeeded", result
        assert result["http_status"] == CATALOG[name].success_status, (name, result["http_status"])
    # And: what reached the emulator is what the declarations and requests say
    calls = {
        c["operation"]: c for c in emulator.requests() if c["operation"] != "Authorization_requestAccessToken"
    }
    for name, fields in {**first, **deletes}.items():
        _check_wire(calls[VENDOR_IDS[name]], name, fields, world)
    _check_payloads(results, calls, emulator, world, outbox)


def _check_payloads(
    results: dict[str, Any], calls: dict[str, Any], emulator: Any, world: dict[str, Any], outbox: Path
) -> None:
    documents = world["documents"]
    assert results["documentsGetById"]["data"]["id"] == documents[0]["id"]
    assert len(results["documentsList"]["data"]["data"]) == 2
    # processFileIntoDocument in the same batch adds a third document, before or after the list ran
    assert results["documentsList"]["data"]["totalCount"] in (2, 3)
    assert [s["state"] for s in results["retrieveDocumentStates"]["data"]][-1] == "extracted"
    for name in ("documentUpdateExternalData", "documentsUpdateExternalId", "documentsUpdateTitle"):
        assert results[name]["data"] is None
    changed = emulator.document(documents[1]["id"])
    assert changed["externalId"] == "ERP-4711" and changed["title"] == "Rechnung 4711 / März"
    assert changed["externalData"] == {"erpId": "4711", "paid": True}
    assert emulator.document(documents[2]["id"])["state"] == "transferred"
    created = results["processFileIntoDocument"]["data"]
    assert created["fileId"] == world["upload_file"]["id"] and emulator.document(created["documentId"])
    # The upload: raw bytes, the type detected from them, the non-Latin-1 name percent-encoded.
    upload = calls["Files_uploadFile"]
    assert base64.b64decode(upload["body"]) == PDF and upload["headers"]["content-type"] == "application/pdf"
    assert upload["headers"]["x-hy-filename"] == "scan %E2%82%AC.pdf"
    assert "id" in results["uploadFile"]["data"]
    # The downloads: base64 in the result, or a file in the outbox.
    retrieved = results["retrieveFile"]["data"]
    assert base64.b64decode(retrieved["content_base64"]) == PDF and retrieved["size"] == len(PDF)
    assert retrieved["filename"] == "invoice-äöü.pdf" and retrieved["content_type"] == "application/pdf"
    email = results["emailsContentGetByDocumentId"]["data"]
    stored = outbox / email["path"]
    assert stored.read_bytes().startswith(b"%PDF") and stored.stat().st_size == email["size"]
    assert email["content_type"] == "application/pdf" and len(email["sha256"]) == 64
    assert results["companiesGetById"]["data"]["id"] == world["company"]["id"]
    assert any(c["id"] == world["company"]["id"] for c in results["companiesList"]["data"]["data"])
    assert results["projectsGetById"]["data"]["id"] == world["project"]["id"]
    assert [p["name"] for p in results["projectsList"]["data"]["data"]] == ["Catalog test project"]
    assert results["projectsCreate"]["data"]["name"] == VALID["projectsCreate"]["name"]  # type: ignore[index]
    for kind in ("Approver", "Invoice", "Supplier"):
        assert results[f"insert{kind}"]["data"]["id"]
        assert results[f"delete{kind}"]["data"] is None


INVALID = [
    # (request fields, field named) — one per parameter kind: path, query (int range, enum, repeatable
    # enum), header (length), text body, JSON body schema, external data rules, the upload file, options.
    ({"operation": "documentsGetById", "params": {}}, "params.id"),
    ({"operation": "documentsList", "params": {"limit": 51}}, "params.limit"),
    ({"operation": "documentsList", "params": {"sort": "title"}}, "params.sort"),
    ({"operation": "documentsList", "params": {"state": ["done", "finished"]}}, "params.state"),
    ({"operation": "projectsList", "params": {"offset": -1}}, "params.offset"),
    (
        {
            "operation": "uploadFile",
            "params": {"X-Hy-Filename": "x" * 300},
            "file": {"base64": base64.b64encode(PDF).decode()},
        },
        "params.X-Hy-Filename",
    ),
    ({"operation": "documentsUpdateTitle", "params": {"id": "d"}, "body": "t" * 257}, "body"),
    (
        {"operation": "documentsUpdateTransfer", "params": {"id": "d"}, "body": {"message": "x"}},
        "body.successful",
    ),
    ({"operation": "documentUpdateExternalData", "params": {"id": "d"}, "body": {"k" * 51: 1}}, "body"),
    (
        {"operation": "insertInvoice", "body": {"externalId": "I1", "currency": "euro", "documentId": "d"}},
        "body.currency",
    ),
    (
        {"operation": "uploadFile", "file": {"base64": base64.b64encode(b"GIF89a....").decode()}},
        "file.content_type",
    ),
    ({"operation": "uploadFile", "file": {"path": "../etc/passwd"}}, "file.path"),
    ({"operation": "uploadFile"}, "file"),
    ({"operation": "companiesList", "all_pages": True}, "all_pages"),
    ({"operation": "documentsGetById", "params": {"id": "d"}, "output": "base64"}, "output"),
]


def test_invalid_requests_of_every_parameter_kind_get_validation_error_and_no_call(
    fleet: WorkerFleet, amqp: AmqpTestClient, emulator: Any, queue_names: dict[str, str], tmp_path: Path
) -> None:
    (tmp_path / "inbox").mkdir()
    fleet.start(1, HYPATOS_INBOX_DIR=str(tmp_path / "inbox"))
    for index, (fields, _) in enumerate(INVALID):
        amqp.publish(
            queue_names["HYPATOS_REQUEST_QUEUE"], {"id": f"bad-{index}", "connection": "main", **fields}
        )
    results = {r["id"]: r for _, r in amqp.collect(queue_names["HYPATOS_RESULT_QUEUE"], len(INVALID))}
    for index, (_, field) in enumerate(INVALID):
        result = results[f"bad-{index}"]
        assert result["status"] == "failed" and result["error"]["code"] == "validation_error", result
        assert field in [d["field"] for d in result["error"]["details"]], result
        assert result["attempts"] == 0
    assert emulator.counters()["operations"] == {}


def test_all_pages_follows_offsets_until_total_count_and_respects_max_items(
    fleet: WorkerFleet, amqp: AmqpTestClient, emulator: Any, queue_names: dict[str, str]
) -> None:
    project = emulator.seed_project(name="Paging")
    emulator.seed_documents(123, project_id=project["id"], state="done")
    fleet.start(1)
    queue = queue_names["HYPATOS_REQUEST_QUEUE"]
    base = {"connection": "main", "operation": "documentsList", "all_pages": True}
    amqp.publish(queue, {"id": "all", **base, "params": {"projectId": project["id"], "limit": 50}})
    amqp.publish(
        queue, {"id": "capped", **base, "params": {"projectId": project["id"], "limit": 20}, "max_items": 45}
    )
    amqp.publish(queue, {"id": "from-120", **base, "params": {"projectId": project["id"], "offset": 120}})
    results = {r["id"]: r for _, r in amqp.collect(queue_names["HYPATOS_RESULT_QUEUE"], 3, timeout_s=60)}
    everything = results["all"]["data"]
    assert len(everything["data"]) == 123 and everything["totalCount"] == 123
    assert len({d["id"] for d in everything["data"]}) == 123 and everything["pages"] == 3
    assert everything["truncated"] is False and results["all"]["attempts"] == 3
    capped = results["capped"]["data"]
    assert len(capped["data"]) == 45 and capped["truncated"] is True and capped["pages"] == 3
    tail = results["from-120"]["data"]
    assert len(tail["data"]) == 3 and tail["offset"] == 120 and tail["pages"] == 1
    offsets = {c["query"]["offset"][0] for c in emulator.requests() if c["operation"] == "Documents_getList"}
    assert {"0", "50", "100", "120"} <= offsets  # pages walked by offset, never past totalCount
    assert not any(int(o) >= 123 for o in offsets)
