"""X-Hy-Filename with non-ASCII names: raw Latin-1 bytes, UTF-8 bytes and percent-encoded text.

The test client (http.client) sends a header value's characters as Latin-1 bytes, so `_raw(b)`
puts exactly the bytes `b` on the wire, and `.encode("latin-1")` on a received header gives back
the bytes the emulator sent.
"""

from __future__ import annotations

import json
import urllib.request

import pytest

from emulator.testing import EmulatorServer
from tests.emulator.helpers import Api

PDF = b"%PDF-1.4\n%%EOF\n"


def _raw(header_bytes: bytes) -> str:
    """A header value that http.client sends as exactly these bytes."""
    return header_bytes.decode("latin-1")


def _upload_and_process(server: EmulatorServer, api: Api, header_bytes: bytes) -> tuple[str, str]:
    project = server.seed_project()
    headers = {"Content-Type": "application/pdf", "X-Hy-Filename": _raw(header_bytes)}
    upload = api.request("POST", "/files", PDF + header_bytes, headers=headers)
    assert upload.status == 201, upload.body
    file_id = upload.json()["id"]
    processed = api.post_json("/documents/process-file", {"fileId": file_id, "projectId": project["id"]})
    assert processed.status == 202, processed.body
    return file_id, processed.json()["documentId"]


@pytest.mark.parametrize(
    ("header_bytes", "stored"),
    [
        pytest.param(b"M\xfcller.pdf", "Müller.pdf", id="raw-latin-1"),
        pytest.param("Müller.pdf".encode(), "Müller.pdf", id="utf-8"),
        pytest.param(b"M%C3%BCller.pdf", "M%C3%BCller.pdf", id="percent-encoded"),
        pytest.param(b"Rechnung \xa4 \xe9t\xe9.pdf", "Rechnung ¤ été.pdf", id="latin-1-several"),
        pytest.param("請求書.pdf".encode(), "請求書.pdf", id="utf-8-cjk"),
    ],
)
def test_given_a_non_ascii_file_name_then_documents_stay_readable_after_processing(
    server: EmulatorServer, api: Api, header_bytes: bytes, stored: str
) -> None:
    file_id, doc_id = _upload_and_process(server, api, header_bytes)

    document = api.get(f"/documents/{doc_id}")
    assert document.status == 200 and document.json()["title"] == stored
    listing = api.get("/documents")
    assert listing.status == 200 and listing.json()["data"][0]["title"] == stored
    assert api.get(f"/documents/{doc_id}/states").status == 200
    assert api.get(f"/emails/{doc_id}/content").status == 200

    download = api.get(f"/files/{file_id}")
    assert download.status == 200 and download.body == PDF + header_bytes
    assert download.headers["x-hy-filename"].encode("latin-1") == stored.encode("utf-8")

    [record] = server.records()["files"]
    assert record["filename"] == stored and record["size"] == len(PDF + header_bytes)
    upload_entry = next(e for e in server.requests() if e["operation"] == "Files_uploadFile")
    assert upload_entry["headers"]["x-hy-filename"] == stored


def test_given_a_latin_1_file_name_then_the_admin_api_still_answers_over_http(
    server: EmulatorServer, api: Api
) -> None:
    _, doc_id = _upload_and_process(server, api, b"M\xfcller.pdf")
    for path in ("/requests", "/records", f"/documents/{doc_id}"):
        with urllib.request.urlopen(server.admin_url + path, timeout=10) as resp:
            assert resp.status == 200 and "Müller.pdf" in json.dumps(json.load(resp), ensure_ascii=False)


def test_given_a_name_over_256_characters_after_decoding_then_the_upload_is_refused(api: Api) -> None:
    headers = {"Content-Type": "application/pdf"}
    exactly = api.request("POST", "/files", PDF, headers={**headers, "X-Hy-Filename": _raw(b"\xfc" * 256)})
    assert exactly.status == 201  # 256 Latin-1 bytes are 256 characters
    too_long = api.request("POST", "/files", PDF, headers={**headers, "X-Hy-Filename": _raw(b"\xfc" * 257)})
    assert too_long.status == 400


def test_given_a_lone_surrogate_escape_in_json_then_the_document_stays_readable(
    server: EmulatorServer, api: Api
) -> None:
    """JSON may carry `\\udcfc`, which has no UTF-8 form; it is sent back as the same escape."""
    project = server.seed_project()
    file_id = api.request("POST", "/files", PDF, headers={"Content-Type": "application/pdf"}).json()["id"]
    raw = json.dumps({"fileId": file_id, "projectId": project["id"], "externalId": "M\udcfcller"})
    assert "\\udcfc" in raw  # json.dumps escapes it
    processed = api.request(
        "POST", "/documents/process-file", raw.encode(), headers={"Content-Type": "application/json"}
    )
    doc_id = processed.json()["documentId"]
    reply = api.get(f"/documents/{doc_id}")
    assert reply.status == 200 and b'"externalId":"M\\udcfcller"' in reply.body
    assert json.loads(reply.body)["externalId"] == "M\udcfcller"
    assert api.get("/documents").status == 200
