"""Batch processing: upload -> process-file -> wait -> fetch for many files, as a pipeline runs it.

Checks the lifecycle clock and the failure/junk shares on processed files, the list filters, paging
and sort a pipeline polls with, the admin records and counters its tests compare reports against,
and the memory a large batch costs.
"""

from __future__ import annotations

import hashlib
import json
import tracemalloc
import urllib.request
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from emulator.admin import AdminService
from emulator.core import Emulator
from emulator.pdf import invoice_pdf
from emulator.settings import Settings
from emulator.testing import EmulatorServer
from tests.emulator.helpers import Api

FILES = 120
FINAL = {"doneAutomatically", "failed", "junk"}


@pytest.fixture
def batch() -> Iterator[EmulatorServer]:
    with EmulatorServer(new_s=2, processing_s=3, failure_rate=0.15, junk_rate=0.15, seed=11) as server:
        yield server


def _run_batch(server: EmulatorServer, api: Api, projects: list[str]) -> list[dict[str, Any]]:
    """Upload and process FILES distinct PDFs, spread over `projects`; what the pipeline would note."""
    sent = []
    for n in range(FILES):
        content = invoice_pdf(n)
        name = f"invoice-{n:04d}.pdf"
        upload = api.request(
            "POST", "/files", content, headers={"Content-Type": "application/pdf", "X-Hy-Filename": name}
        )
        assert upload.status == 201
        file_id = upload.json()["id"]
        project_id = projects[n % len(projects)]
        processed = api.post_json(
            "/documents/process-file", {"fileId": file_id, "projectId": project_id, "externalId": f"ext-{n}"}
        )
        assert processed.status == 202
        sent.append(
            {
                "fileId": file_id,
                "documentId": processed.json()["documentId"],
                "projectId": project_id,
                "externalId": f"ext-{n}",
                "filename": name,
                "size": len(content),
                "sha256": hashlib.sha256(content).hexdigest(),
            }
        )
    return sent


def _walk(api: Api, query: str, limit: int = 50) -> tuple[list[dict[str, Any]], int]:
    """Every page of a list query; returns the items and the totalCount every page agreed on."""
    items: list[dict[str, Any]] = []
    totals = set()
    offset = 0
    while True:
        page = api.get(f"/documents?{query}&limit={limit}&offset={offset}").json()
        totals.add(page["totalCount"])
        assert (page["limit"], page["offset"]) == (limit, offset)
        items += page["data"]
        offset += limit
        if offset >= page["totalCount"]:
            break
    assert len(totals) == 1
    return items, totals.pop()


def test_given_a_batch_then_documents_wait_and_end_failed_junk_or_done_at_the_configured_shares(
    batch: EmulatorServer,
) -> None:
    api = Api(batch)
    project = batch.seed_project(completion="automatic", duplicates="allow")["id"]
    sent = _run_batch(batch, api, [project])

    assert api.get("/documents?state=new").json()["totalCount"] == FILES
    batch.advance_clock(2)
    assert api.get("/documents?state=processing").json()["totalCount"] == FILES
    assert api.get(f"/documents/{sent[0]['documentId']}").json()["entities"] == {}
    batch.advance_clock(3)
    states = Counter(api.get(f"/documents/{s['documentId']}").json()["state"] for s in sent)
    assert set(states) == FINAL
    assert 5 <= states["failed"] <= 40 and 5 <= states["junk"] <= 40  # 15 % each of 120, seeded
    for state, count in states.items():
        assert api.get(f"/documents?state={state}").json()["totalCount"] == count


def test_given_a_batch_then_list_filters_paging_and_sort_agree_with_the_records(
    batch: EmulatorServer,
) -> None:
    api = Api(batch)
    projects = [batch.seed_project(name=f"P{i}", duplicates="allow")["id"] for i in range(3)]
    sent = _run_batch(batch, api, projects)
    batch.advance_clock(5)

    two = f"projectId={projects[0]}&projectId={projects[1]}"
    items, total = _walk(api, f"{two}&sort=%2BcreatedAt")
    assert total == len(items) == sum(1 for s in sent if s["projectId"] in projects[:2])
    assert len({i["id"] for i in items}) == total
    assert [i["id"] for i in items] == [s["documentId"] for s in sent if s["projectId"] in projects[:2]]
    newest_first, _ = _walk(api, f"{two}&sort=-createdAt")
    assert [i["id"] for i in newest_first] == [i["id"] for i in items][::-1]
    created = [i["createdAt"] for i in items]
    assert created == sorted(created)

    by_document = {s["documentId"]: s for s in sent}
    for item in items:
        assert item["fileId"] == by_document[item["id"]]["fileId"]
        assert item["externalId"] == by_document[item["id"]]["externalId"]
        assert item["state"] in FINAL and item["createdAt"].endswith("Z")

    failed_or_junk, total = _walk(api, f"{two}&state=failed&state=junk", limit=7)
    assert total == sum(1 for i in items if i["state"] in ("failed", "junk")) > 0
    assert {i["state"] for i in failed_or_junk} == {"failed", "junk"}

    records = batch.records()
    assert [(d["id"], d["fileId"], d["projectId"], d["externalId"]) for d in records["documents"]] == [
        (s["documentId"], s["fileId"], s["projectId"], s["externalId"]) for s in sent
    ]
    states = {i["id"]: i["state"] for i in _walk(api, "sort=-createdAt")[0]}
    assert {d["id"]: d["state"] for d in records["documents"]} == states
    assert [(f["id"], f["filename"], f["size"], f["sha256"]) for f in records["files"]] == [
        (s["fileId"], s["filename"], s["size"], s["sha256"]) for s in sent
    ]
    assert {f["clientId"] for f in records["files"]} == {batch.client_id}
    assert {d["clientId"] for d in records["documents"]} == {batch.client_id}


def test_given_repeated_uploads_then_records_count_uploads_per_content_and_calls_per_endpoint(
    server: EmulatorServer, api: Api
) -> None:
    pdf = invoice_pdf(900_001)  # not one the seeding below makes
    for _ in range(3):
        api.request("POST", "/files", pdf, headers={"Content-Type": "application/pdf"})
    api.request("POST", "/files", invoice_pdf(900_002), headers={"Content-Type": "application/pdf"})
    api.get("/documents/000000000000000000000000")
    seeded = server.seed_documents(1)[0]

    records = server.records()
    assert records["uploads_by_sha256"][hashlib.sha256(pdf).hexdigest()] == 3
    assert len(records["files"]) == 5 and records["files"][-1]["clientId"] is None  # the seeded one
    assert records["documents"][-1]["id"] == seeded["id"] and records["documents"][-1]["clientId"] is None
    counters = server.counters()
    assert counters["responses"]["Files_uploadFile"] == {"201": 4}
    assert counters["responses"]["Documents_getById"] == {"404": 1}
    assert counters["responses"]["Authorization_requestAccessToken"] == {"200": 1}
    with urllib.request.urlopen(server.admin_url + "/records", timeout=10) as resp:
        assert json.load(resp)["uploads_by_sha256"] == records["uploads_by_sha256"]


def test_given_many_small_documents_then_the_emulator_holds_only_a_few_kilobytes_each() -> None:
    """Files, documents and their cached JSON: a 10,000-file batch costs its PDFs plus about 30 MB.

    Measured on 2,000 documents (tracemalloc is slow); nothing per document depends on the count.
    """
    emu = Emulator(Settings(new_s=0, processing_s=0))
    admin = AdminService(emu)
    project_id = admin.default_project_id()
    pdfs = [invoice_pdf(n) for n in range(2_000)]
    blob_bytes = sum(len(p) for p in pdfs)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for n, pdf in enumerate(pdfs):
            stored = emu.store.add_file(pdf, "application/pdf", f"invoice-{n:05d}.pdf", "client")
            doc = emu.store.process_file(stored.id, project_id, "client", f"ext-{n}")
            doc.body()  # as after a read
        used = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    per_document = (used - blob_bytes) / len(pdfs)
    assert per_document < 6_000, per_document  # about 3 KB measured: metadata, history, cached JSON
