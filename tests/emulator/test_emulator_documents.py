"""State rules of files, documents and projects: paging, filters, lifecycle, updates, transfer."""

from __future__ import annotations

import pytest

from emulator.testing import EmulatorServer
from tests.emulator.helpers import Api

PDF = b"%PDF-1.4\n%%EOF\n"


def _upload(
    api: Api, content: bytes = PDF, content_type: str = "application/pdf", name: str | None = None
) -> str:
    headers = {"Content-Type": content_type}
    if name:
        headers["X-Hy-Filename"] = name
    reply = api.request("POST", "/files", content, headers=headers)
    assert reply.status == 201, reply.body
    return reply.json()["id"]


def _process(api: Api, file_id: str, project_id: str, **extra: object) -> str:
    reply = api.post_json("/documents/process-file", {"fileId": file_id, "projectId": project_id, **extra})
    assert reply.status == 202, reply.body
    assert reply.body and set(reply.json()) == {"documentId", "fileId", "projectId"}
    return reply.json()["documentId"]


def _states(api: Api, doc_id: str) -> list[str]:
    return [s["state"] for s in api.get(f"/documents/{doc_id}/states").json()]


@pytest.mark.parametrize(
    "content_type",
    ["application/pdf", "image/jpeg", "image/png", "image/tiff", "Application/PDF; charset=binary"],
)
def test_upload_accepts_supported_types(api: Api, content_type: str) -> None:
    file_id = _upload(api, b"bytes", content_type)
    reply = api.get(f"/files/{file_id}")
    assert reply.status == 200 and reply.body == b"bytes"
    assert reply.headers["content-type"] == content_type.split(";")[0].lower()
    assert "x-hy-filename" not in reply.headers  # only returned when given at upload


def test_upload_rules(api: Api) -> None:
    assert api.request("POST", "/files", b"x", headers={"Content-Type": "application/xml"}).status == 400
    assert api.request("POST", "/files", b"", headers={"Content-Type": "application/pdf"}).status == 400
    long_name = {"Content-Type": "application/pdf", "X-Hy-Filename": "n" * 257}
    assert api.request("POST", "/files", b"x", headers=long_name).status == 400
    file_id = _upload(api, name="scan-1.pdf")
    assert len(file_id) == 24 and int(file_id, 16) >= 0
    assert api.get(f"/files/{file_id}").headers["x-hy-filename"] == "scan-1.pdf"


def test_paging_defaults_clamping_and_range(server: EmulatorServer, api: Api) -> None:
    server.seed_documents(55, state="done")
    page = api.get("/documents").json()
    assert (page["limit"], page["offset"], page["totalCount"], len(page["data"])) == (20, 0, 55, 20)
    page = api.get("/documents?limit=1000&offset=50").json()
    assert (page["limit"], page["offset"], len(page["data"])) == (50, 50, 5)
    assert api.get("/documents?offset=55").json()["data"] == []
    for bad in ("limit=-1", "offset=-1", "limit=abc", "offset=1.5", "offset=56"):
        reply = api.get(f"/documents?{bad}")
        assert reply.status == 400, bad
        assert set(reply.json()) == {"title", "detail", "status"}


def test_sort_and_filters(server: EmulatorServer, api: Api) -> None:
    docs = server.seed_documents(3, state="done")
    ids = [d["id"] for d in docs]
    assert [d["id"] for d in api.get("/documents").json()["data"]] == ids[::-1]
    assert [d["id"] for d in api.get("/documents?sort=%2BcreatedAt").json()["data"]] == ids
    assert [d["id"] for d in api.get("/documents?sort=+createdAt").json()["data"]] == ids  # '+' sent raw
    assert [d["id"] for d in api.get("/documents?sort=createdAt").json()["data"]] == ids
    api.post_text(f"/documents/{ids[0]}/title", "touched")
    assert api.get("/documents?sort=-updatedAt").json()["data"][0]["id"] == ids[0]
    assert api.get("/documents?sort=title").status == 400
    assert api.get("/documents?state=bogus").status == 400
    assert api.get(f"/documents?fileId={docs[1]['fileId']}").json()["data"][0]["id"] == ids[1]
    other = server.seed_project(name="Other")
    server.seed_documents(2, project_id=other["id"], state="failed")
    assert api.get(f"/documents?projectId={other['id']}").json()["totalCount"] == 2
    both = f"projectId={other['id']}&projectId={docs[0]['projectId']}"
    assert api.get(f"/documents?{both}").json()["totalCount"] == 5
    assert api.get("/documents?state=failed&state=done").json()["totalCount"] == 5
    assert api.get("/documents?state=failed").json()["totalCount"] == 2


def test_document_shape(server: EmulatorServer, api: Api) -> None:
    doc = server.seed_documents(1, state="done", externalId="ext-1", externalData={"a": "b"})[0]
    body = api.get(f"/documents/{doc['id']}").json()
    assert body == doc
    for key in (
        "id",
        "projectId",
        "fileId",
        "state",
        "title",
        "createdAt",
        "createdBy",
        "updatedAt",
        "updatedBy",
        "entities",
        "externalData",
        "externalId",
        "completedAt",
        "completedBy",
        "files",
    ):
        assert key in body, key
    assert body["files"] == [{"id": body["fileId"], "type": "original", "mainFile": True}]
    entities = body["entities"]
    assert entities["type"] == "invoice" and entities["items"] and entities["currency"]
    assert entities["totalGrossAmount"] == pytest.approx(
        entities["totalNetAmount"] + entities["totalTaxAmount"]
    )
    assert api.get("/documents/000000000000000000000000").status == 404


def test_lifecycle_on_the_clock(server: EmulatorServer, api: Api) -> None:
    server.set_faults(new_s=10, processing_s=20, extracted_s=5)
    project = server.seed_project(completion="automatic")
    doc_id = _process(api, _upload(api), project["id"])
    assert api.get(f"/documents/{doc_id}").json()["state"] == "new"
    assert api.get(f"/documents/{doc_id}").json()["entities"] == {}
    server.advance_clock(10)
    assert api.get(f"/documents/{doc_id}").json()["state"] == "processing"
    server.advance_clock(20)
    assert api.get("/documents?state=extracted").json()["totalCount"] == 1
    assert api.get(f"/documents/{doc_id}").json()["entities"]["type"] == "invoice"
    server.advance_clock(5)
    body = api.get(f"/documents/{doc_id}").json()
    assert body["state"] == "doneAutomatically" and "completedAt" in body
    assert _states(api, doc_id) == ["new", "processing", "extracted", "doneAutomatically"]


def test_manual_projects_wait_for_review(server: EmulatorServer, api: Api) -> None:
    project = server.seed_project(completion="manual")
    doc_id = _process(api, _upload(api), project["id"])
    assert api.get(f"/documents/{doc_id}").json()["state"] == "reviewRequired"
    server.set_document_state(doc_id, "done")
    assert _states(api, doc_id) == ["new", "processing", "reviewRequired", "done"]
    server.set_faults(review_s=3)
    doc_id = _process(api, _upload(api, b"other"), project["id"])
    server.advance_clock(3)
    assert api.get(f"/documents/{doc_id}").json()["state"] == "done"


@pytest.mark.parametrize(("setting", "state"), [("failure_rate", "failed"), ("junk_rate", "junk")])
def test_failure_shares(server: EmulatorServer, api: Api, setting: str, state: str) -> None:
    server.set_faults(**{setting: 1.0})
    project = server.seed_project()
    doc_id = _process(api, _upload(api), project["id"])
    body = api.get(f"/documents/{doc_id}").json()
    assert body["state"] == state and body["entities"] == {}


def test_duplicates_fail_marks_reprocessed_file_failed(server: EmulatorServer, api: Api) -> None:
    strict = server.seed_project(duplicates="fail")
    lenient = server.seed_project(duplicates="allow")
    file_id = _upload(api)
    first = _process(api, file_id, strict["id"])
    again = _process(api, _upload(api), strict["id"])  # same bytes, new upload
    allowed = [_process(api, file_id, lenient["id"]) for _ in range(2)]
    assert api.get(f"/documents/{first}").json()["state"] == "doneAutomatically"
    assert api.get(f"/documents/{again}").json()["state"] == "failed"
    assert {api.get(f"/documents/{d}").json()["state"] for d in allowed} == {"doneAutomatically"}


def test_process_file_errors(server: EmulatorServer, api: Api) -> None:
    project = server.seed_project()
    file_id = _upload(api)
    assert (
        api.post_json("/documents/process-file", {"fileId": "nope", "projectId": project["id"]}).status == 404
    )
    assert api.post_json("/documents/process-file", {"fileId": file_id, "projectId": "nope"}).status == 404
    assert api.post_json("/documents/process-file", {"projectId": project["id"]}).status == 400
    bad_json = api.request(
        "POST", "/documents/process-file", b"{", headers={"Content-Type": "application/json"}
    )
    assert bad_json.status == 400
    doc_id = _process(api, file_id, project["id"], externalId="e-1", externalData={"Ref": "1"})
    body = api.get(f"/documents/{doc_id}").json()
    assert body["externalId"] == "e-1" and body["externalData"] == {"Ref": "1"}
    assert body["title"].endswith(".pdf") and body["fileId"] == file_id


def test_external_data_rules(server: EmulatorServer, api: Api) -> None:
    doc_id = server.seed_documents(1, state="done")[0]["id"]
    data = {"k" * 50: "kept", "x" * 51: "dropped", "n": 1}
    reply = api.post_json(f"/documents/{doc_id}/external-data", data)
    assert reply.status == 202 and reply.body == b""
    assert api.get(f"/documents/{doc_id}").json()["externalData"] == {"k" * 50: "kept", "n": 1}
    twenty = {f"key{i}": str(i) for i in range(20)}
    assert api.post_json(f"/documents/{doc_id}/external-data", twenty).status == 202
    assert api.post_json(f"/documents/{doc_id}/external-data", {**twenty, "one": "more"}).status == 400
    assert api.post_json(f"/documents/{doc_id}/external-data", {**twenty, "l" * 51: "long"}).status == 202
    assert api.post_json(f"/documents/{doc_id}/external-data", {"Key": "a", "KEY": "b"}).status == 202
    assert api.get(f"/documents/{doc_id}").json()["externalData"] == {"KEY": "b"}  # case-insensitive keys
    assert api.post_json(f"/documents/{doc_id}/external-data", {"nested": {"a": 1}}).status == 400
    assert api.post_json(f"/documents/{doc_id}/external-data", {}).status == 202
    assert api.get(f"/documents/{doc_id}").json()["externalData"] == {}


def test_external_id_and_title(server: EmulatorServer, api: Api) -> None:
    doc_id = server.seed_documents(1, state="done")[0]["id"]
    assert api.post_text(f"/documents/{doc_id}/external-id", "ERP-4711").status == 202
    assert api.post_text(f"/documents/{doc_id}/title", "t" * 256).status == 202
    body = api.get(f"/documents/{doc_id}").json()
    assert body["externalId"] == "ERP-4711" and body["title"] == "t" * 256
    assert api.post_text(f"/documents/{doc_id}/title", "t" * 257).status == 400
    assert api.post_text(f"/documents/{doc_id}/title", "").status == 400
    assert api.post_json(f"/documents/{doc_id}/title", "json title").status == 400  # text/plain only
    assert api.post_text("/documents/000000000000000000000000/title", "x").status == 404


def test_transfer_reports(server: EmulatorServer, api: Api) -> None:
    doc_id = server.seed_documents(1, state="doneAutomatically")[0]["id"]
    assert (
        api.post_json(f"/documents/{doc_id}/transfer", {"successful": False, "message": "ERP down"}).status
        == 202
    )
    assert api.get(f"/documents/{doc_id}").json()["state"] == "transferFailed"
    assert api.post_json(f"/documents/{doc_id}/transfer", {"successful": True}).status == 202
    assert _states(api, doc_id)[-2:] == ["transferFailed", "transferred"]
    transfers = server.document(doc_id)["_emulator"]["transfers"]
    assert [t["successful"] for t in transfers] == [False, True] and transfers[0]["message"] == "ERP down"
    assert api.post_json(f"/documents/{doc_id}/transfer", {"message": "x"}).status == 400
    busy = server.seed_documents(1, state="processing")[0]["id"]
    assert api.post_json(f"/documents/{busy}/transfer", {"successful": True}).status == 400


def test_seeded_states_have_a_plausible_history(server: EmulatorServer, api: Api) -> None:
    doc = server.seed_documents(1, state="transferred")[0]
    assert _states(api, doc["id"]) == ["new", "processing", "extracted", "doneAutomatically", "transferred"]
    with pytest.raises(ValueError):
        server.seed_documents(1, state="bogus")
    live = server.seed_documents(1, lifecycle=True)[0]
    assert live["state"] in ("new", "doneAutomatically")


def test_email_content(server: EmulatorServer, api: Api) -> None:
    doc_id = server.seed_documents(1)[0]["id"]
    reply = api.get(f"/emails/{doc_id}/content")
    assert (
        reply.status == 200 and reply.body.startswith(b"%PDF-1.4") and reply.body.rstrip().endswith(b"%%EOF")
    )
    assert api.get("/emails/000000000000000000000000/content").status == 404
