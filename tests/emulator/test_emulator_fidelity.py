"""Fidelity: drive all 34 vendor operations over real HTTP and validate every request and response
against the vendor OpenAPI spec (with the documented patch set of known deviations applied).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from openapi_core import OpenAPI
from openapi_core.testing import MockRequest, MockResponse

from emulator.routes import OPERATIONS
from emulator.testing import EmulatorServer
from tests.emulator.helpers import Api, Reply, Sent
from tests.emulator.vendor_spec import PATCHES, load_raw_spec, patched_spec

pytestmark = pytest.mark.filterwarnings("ignore:Unsupported scheme type:UserWarning")

VENDOR_HOST = "https://api.cloud.hypatos.ai"
PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
DOC_REF = {"documentId": "63cac12c37bb02accb396cae"}

ENRICHMENT_PAYLOADS: dict[str, dict[str, Any]] = {
    "invoices": {
        **DOC_REF,
        "externalId": "SUPPLIER_INVOICE-3-1",
        "supplierInvoiceNumber": "10000001",
        "currency": "EUR",
        "issuedDate": "2000-12-31",
        "totalNetAmount": 81,
        "totalGrossAmount": 119,
        "paymentTerms": {
            "paymentTermKey": "T10",
            "descriptions": [{"text": "Please pay us", "language": "en"}],
        },
        "customFields": {"costObject": "A1"},
        "invoiceLines": [
            {
                "externalId": "00000001",
                "quantity": 2,
                "netAmount": 40.5,
                "taxCode": {"code": "DEU_Standard"},
                "accountAssignments": [{"glAccountCode": "GL1", "costCenterCode": "CO1", "quantity": 2}],
            },
            {"externalId": "00000002", "quantity": 1, "netAmount": 40.5},
        ],
        "withholdingTax": [{"key": "WHT-432", "baseAmount": 632.78, "amount": 21.39, "currency": "EUR"}],
    },
    "companies": {
        "externalId": "DE01",
        "name": "Acmne Corp.",
        "countryCode": "DE",
        "vatIds": [{"id": "DE123456789X", "countryCode": "DE"}],
        "taxIds": [{"id": "1", "type": "TIN"}],
    },
    "suppliers": {
        "externalId": "0000100000",
        "name": "Acmne Corp.",
        "countryCode": "DE",
        "blockedForPayment": False,
        "defaultAccountAssignment": {"glAccountCode": "0000100GL1"},
        "supplierSubsidiaries": [
            {
                "externalCompanyId": "DE01",
                "enabledForAutoPosting": True,
                "withholdingTaxInfo": [{"key": "WHT-432"}],
            }
        ],
        "supplierBankAccounts": [{"externalId": "12341234", "iban": "DE91100000000123456789"}],
    },
    "purchase-orders": {
        "externalId": "4500016221",
        "createdDate": "2000-12-31",
        "currency": "EUR",
        "language": "de",
        "purchaseOrderLines": [
            {"purchaseOrderLineNumber": "00010", "quantity": 2, "material": {"externalId": "M1"}},
            {"purchaseOrderLineNumber": "00020", "quantity": 1},
        ],
    },
    "gl-accounts": {
        "externalId": "0000100GL1",
        "code": "GL1",
        "companyAssignment": ["DE01"],
        "type": {"value": "OE", "labels": [{"text": "Expense", "language": "en"}]},
        "label": [{"text": "Entertainment Expenses", "language": "en"}],
    },
    "cost-centers": {
        "externalId": "0000100CO1",
        "code": "CO1",
        "shortLabel": [{"text": "Sales Eng.", "language": "en"}],
    },
    "approvers": {
        "externalId": "UserID#1234",
        "firstName": "Koala",
        "lastName": "Hinze",
        "isActive": True,
        "email": "accountant@example.com",
    },
    "customers": {
        "externalId": "0000100000",
        "name": "Acmne Corp.",
        "city": "Berlin",
        "customerBankAccounts": [{"externalId": "1", "bic": "CHASUS33XXX"}],
    },
}
INVALID_ENRICHMENT: dict[str, dict[str, Any]] = {
    "invoices": {"externalId": "has space", "invoiceLines": []},
    "companies": {"externalId": "DE01"},
    "suppliers": {"name": "no id"},
    "purchase-orders": {"externalId": "4500016221", "purchaseOrderLines": [{"quantity": 1}]},
    "gl-accounts": {"externalId": "GL"},
    "cost-centers": {"code": "CO1"},
    "approvers": {"externalId": "A1", "isActive": "yes"},
    "customers": {"externalId": "C1", "name": " "},
}


@dataclass
class Exchange:
    operation: str
    sent: Sent
    reply: Reply
    request_valid: bool


class Scenario:
    """Runs calls through an Api and remembers which requests are deliberately invalid."""

    def __init__(self, api: Api) -> None:
        self.api = api
        self.invalid: set[int] = set()

    def invalid_request(self, reply: Reply) -> Reply:
        """Mark the last call as an intentionally spec-invalid request (its response is still checked)."""
        self.invalid.add(len(self.api.history) - 1)
        return reply


def _expect(reply: Reply, status: int) -> Reply:
    assert reply.status == status, (status, reply.status, reply.body[:300])
    return reply


def _drive_auth(s: Scenario, server: EmulatorServer) -> None:
    api = s.api
    _expect(api.token_request(), 200)
    _expect(api.token_request(scope="documents.read files.read"), 200)
    _expect(api.token_request(secret="wrong"), 401)
    s.invalid_request(_expect(api.token_request(form="grant_type=password"), 400))
    api.fetch_token()
    _expect(api.get("/documents", headers={"Authorization": "Bearer nope"}), 401)
    narrow = Api(server)
    narrow.history = api.history
    narrow.fetch_token(scope="files.read")
    _expect(narrow.get("/documents"), 403)
    server.add_client("limited", "limited-secret", rate_limit=2, rate_window_s=60)
    limited = Api(server)
    limited.history = api.history
    _expect(limited.token_request(client_id="limited", secret="limited-secret"), 200)
    limited.token = limited.history[-1][1].json()["access_token"]
    _expect(limited.get("/projects"), 200)
    _expect(limited.get("/projects"), 429)


def _drive_files(s: Scenario) -> str:
    api = s.api
    file_id = _expect(
        api.request(
            "POST",
            "/files",
            PDF,
            headers={"Content-Type": "application/pdf", "X-Hy-Filename": "scan-doc-1.pdf"},
        ),
        201,
    ).json()["id"]
    _expect(api.request("POST", "/files", PNG, headers={"Content-Type": "image/png"}), 201)
    s.invalid_request(
        _expect(api.request("POST", "/files", b"hello", headers={"Content-Type": "text/plain"}), 400)
    )
    reply = _expect(api.get(f"/files/{file_id}"), 200)
    assert reply.body == PDF and reply.headers["x-hy-filename"] == "scan-doc-1.pdf"
    _expect(api.get("/files/000000000000000000000000"), 404)
    return file_id


def _drive_projects(s: Scenario) -> str:
    api = s.api
    project = _expect(
        api.post_json(
            "/projects",
            {
                "name": "Invoices DE",
                "note": "AP inbox",
                "extractionModelId": "63e6663823b4c1f5287398bb",
                "ocr": {"engine": "abbyy", "features": ["barcodes"], "languages": ["German", "English"]},
                "completion": "automatic",
                "duplicates": "fail",
                "members": {"allow": "all"},
            },
        ),
        201,
    ).json()
    _expect(
        api.post_json(
            "/projects",
            {
                "name": "Receipts",
                "extractionModelId": "63e6663823b4c1f5287398bb",
                "ocr": {"engine": "google", "features": ["plainText"]},
                "members": {"allow": "members", "members": ["63e6663823b4c1f5287398bb"]},
            },
        ),
        201,
    )
    s.invalid_request(_expect(api.post_json("/projects", {"name": ""}), 422))
    _expect(api.get(f"/projects/{project['id']}"), 200)
    _expect(api.get("/projects/63e6663823b4c1f5287398bb"), 404)
    _expect(api.get("/projects?search=invoices&sort=%2BcreatedAt&limit=10&offset=0"), 200)
    _expect(api.get("/projects"), 200)
    s.invalid_request(_expect(api.get("/projects?limit=-1"), 422))
    _expect(api.get(f"/projects/{project['id']}/schema"), 200)
    _expect(api.get("/projects/not-an-id/schema"), 400)
    return project["id"]


def _drive_documents(s: Scenario, file_id: str, project_id: str) -> str:
    api = s.api
    accepted = _expect(
        api.post_json(
            "/documents/process-file",
            {
                "fileId": file_id,
                "projectId": project_id,
                "externalId": "doc-0001",
                "externalData": {"internalSystemId": "sap-01"},
            },
        ),
        202,
    ).json()
    doc_id = accepted["documentId"]
    _expect(
        api.post_json(
            "/documents/process-file", {"fileId": "000000000000000000000000", "projectId": project_id}
        ),
        404,
    )
    s.invalid_request(_expect(api.post_json("/documents/process-file", {"fileId": file_id}), 400))
    _expect(api.get(f"/documents/{doc_id}"), 200)
    _expect(api.get("/documents/000000000000000000000000"), 404)
    query = (
        f"projectId={project_id}&projectId=63e6663823b4c1f5287398bb&state=doneAutomatically&state=extracted"
        f"&sort=-updatedAt&limit=5&offset=0&fileId={file_id}"
    )
    assert _expect(api.get(f"/documents?{query}"), 200).json()["totalCount"] == 1
    _expect(api.get("/documents"), 200)
    s.invalid_request(_expect(api.get("/documents?limit=-5"), 400))
    _expect(api.get("/documents?offset=1000"), 400)
    _expect(api.get("/documents?projectId=bad"), 400)
    _expect(api.get(f"/documents/{doc_id}/states"), 200)
    _expect(api.get("/documents/000000000000000000000000/states"), 404)
    _expect(api.post_json(f"/documents/{doc_id}/external-data", {"key1": "value1", "k" * 51: "dropped"}), 202)
    _expect(api.post_json(f"/documents/{doc_id}/external-data", {f"k{i}": "v" for i in range(21)}), 400)
    _expect(api.post_json("/documents/000000000000000000000000/external-data", {}), 404)
    _expect(api.post_text(f"/documents/{doc_id}/external-id", "15b884b0-d551-4865-bda9-4168800c9d87"), 202)
    _expect(api.post_text("/documents/000000000000000000000000/external-id", "x"), 404)
    _expect(api.post_text(f"/documents/{doc_id}/title", "New Title of Document"), 202)
    s.invalid_request(_expect(api.post_text(f"/documents/{doc_id}/title", "t" * 257), 400))
    _expect(api.post_json(f"/documents/{doc_id}/transfer", {"successful": False, "message": "ERP down"}), 202)
    _expect(api.post_json(f"/documents/{doc_id}/transfer", {"successful": True}), 202)
    _expect(api.post_json("/documents/000000000000000000000000/transfer", {"successful": True}), 404)
    return doc_id


def _drive_companies_and_emails(s: Scenario, server: EmulatorServer, doc_id: str) -> None:
    api = s.api
    company = server.seed_company("Demo Buyer GmbH")
    _expect(api.get(f"/companies/{company['id']}"), 200)
    _expect(api.get("/companies"), 200)
    _expect(api.get("/companies/xyz"), 400)
    _expect(api.get("/companies/000000000000000000000000"), 404)
    reply = _expect(api.get(f"/emails/{doc_id}/content"), 200)
    assert reply.body.startswith(b"%PDF-") and reply.headers["content-type"] == "application/pdf"
    _expect(api.get("/emails/000000000000000000000000/content"), 404)


def _drive_enrichment(s: Scenario) -> None:
    api = s.api
    for kind, payload in ENRICHMENT_PAYLOADS.items():
        first = _expect(api.post_json(f"/enrichment/{kind}", payload), 200).json()["id"]
        again = _expect(
            api.post_json(f"/enrichment/{kind}", payload, headers={"X-Hy-Meta-Internal-Company-Id": "DE01"}),
            200,
        ).json()["id"]
        assert first != again  # a different company is a different record
        assert _expect(api.post_json(f"/enrichment/{kind}", payload), 200).json()["id"] == first
        s.invalid_request(_expect(api.post_json(f"/enrichment/{kind}", INVALID_ENRICHMENT[kind]), 422))
        _expect(api.delete(f"/enrichment/{kind}/{payload['externalId'].replace('#', '%23')}"), 204)
        _expect(api.delete(f"/enrichment/{kind}/unknown-id"), 404)
    _expect(api.post_json("/enrichment/invoices", ENRICHMENT_PAYLOADS["invoices"]), 200)
    _expect(api.delete("/enrichment/invoices/SUPPLIER_INVOICE-3-1?lineNumber=00000002"), 204)
    _expect(api.delete("/enrichment/invoices/SUPPLIER_INVOICE-3-1?lineNumber=00000002"), 404)
    _expect(api.post_json("/enrichment/purchase-orders", ENRICHMENT_PAYLOADS["purchase-orders"]), 200)
    _expect(api.delete("/enrichment/purchase-orders/4500016221?lineNumber=00010"), 204)


@pytest.fixture(scope="module")
def openapi() -> OpenAPI:
    return OpenAPI.from_dict(patched_spec(load_raw_spec()))


@pytest.fixture(scope="module")
def exchanges(openapi: OpenAPI) -> Iterator[list[Exchange]]:
    """Run the whole scenario once against a fresh emulator; pair each call with the emulator's log."""
    with EmulatorServer(new_s=0, processing_s=0, seed=7) as server:
        s = Scenario(Api(server))
        _drive_auth(s, server)
        file_id = _drive_files(s)
        project_id = _drive_projects(s)
        doc_id = _drive_documents(s, file_id, project_id)
        _drive_companies_and_emails(s, server, doc_id)
        _drive_enrichment(s)
        log = server.requests()
    assert len(log) == len(s.api.history)
    yield [
        Exchange(entry["operation"], sent, reply, index not in s.invalid)
        for index, (entry, (sent, reply)) in enumerate(zip(log, s.api.history, strict=True))
    ]


def _mock_request(sent: Sent) -> MockRequest:
    url = urlsplit(sent.url)
    headers = {k: v for k, v in sent.headers.items()}
    return MockRequest(
        VENDOR_HOST,
        sent.method,
        url.path,
        args=parse_qsl(url.query, keep_blank_values=True),
        headers=headers,
        data=sent.body,
        content_type=headers.get("Content-Type", ""),
    )


def _mock_response(reply: Reply) -> MockResponse:
    content_type = reply.headers.get("content-type", "")
    return MockResponse(reply.body, reply.status, headers=reply.headers, content_type=content_type)


def test_every_operation_is_exercised(exchanges: list[Exchange]) -> None:
    spec = load_raw_spec()
    expected = {op["operationId"] for item in spec["paths"].values() for op in item.values()}
    assert len(expected) == 34
    seen = {e.operation for e in exchanges if e.reply.status < 400}
    assert expected - seen == set()


def test_requests_and_responses_match_the_spec(openapi: OpenAPI, exchanges: list[Exchange]) -> None:
    problems = []
    for e in exchanges:
        request = _mock_request(e.sent)
        label = f"{e.operation} {e.sent.method} {e.sent.url} -> {e.reply.status}"
        if e.request_valid:
            problems += [f"request {label}: {err}" for err in _errors(openapi.validate_request, request)]
        problems += [
            f"response {label}: {err}"
            for err in _errors(openapi.validate_response, request, _mock_response(e.reply))
        ]
    assert not problems, "\n".join(problems)


def test_deliberately_invalid_requests_are_invalid_per_spec(
    openapi: OpenAPI, exchanges: list[Exchange]
) -> None:
    """The emulator's 4xx answers to bad requests line up with what the spec itself rejects."""
    invalid = [e for e in exchanges if not e.request_valid]
    assert len(invalid) >= 10
    for e in invalid:
        assert _errors(openapi.validate_request, _mock_request(e.sent)), e.sent


@pytest.mark.parametrize("patch", PATCHES, ids=lambda p: p.__name__)
def test_each_spec_patch_is_needed(exchanges: list[Exchange], patch: Any) -> None:
    """Each documented deviation is real: without its patch some observed response fails validation."""
    spec = copy.deepcopy(load_raw_spec())
    for other in PATCHES:
        if other is not patch:
            other(spec)
    openapi = OpenAPI.from_dict(spec)
    failing = [
        e
        for e in exchanges
        if _errors(openapi.validate_response, _mock_request(e.sent), _mock_response(e.reply))
    ]
    assert failing, f"{patch.__name__} is not needed by any observed response"


def test_rate_limit_headers_on_every_response(exchanges: list[Exchange]) -> None:
    for e in exchanges:
        assert {"x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset"} <= set(e.reply.headers), e


def test_raw_spec_rejects_the_real_list_envelope(exchanges: list[Exchange]) -> None:
    """D1 is a real deviation: the unpatched spec rejects what the emulator (and the API) returns."""
    raw = OpenAPI.from_dict(load_raw_spec())
    listing = next(e for e in exchanges if e.operation == "Documents_getList" and e.reply.status == 200)
    assert "data" in json.loads(listing.reply.body)
    assert _errors(raw.validate_response, _mock_request(listing.sent), _mock_response(listing.reply))


def _errors(validate: Any, *args: Any) -> list[str]:
    try:
        validate(*args)
    except Exception as exc:
        causes = [str(c) for c in getattr(exc, "schema_errors", [])] or [repr(exc.__cause__ or exc)]
        return [f"{type(exc).__name__}: {exc} {causes}"]
    return []


def test_operation_table_matches_the_spec() -> None:
    """Same operationIds, methods, paths and scopes as the vendor's per-operation security blocks."""
    spec = load_raw_spec()
    expected = {}
    for path, item in spec["paths"].items():
        for method, op in item.items():
            security = op.get("security", [{}])[0]
            scope = security["OAuth2"][0] if "OAuth2" in security else None
            expected[op["operationId"]] = (method.upper(), path, scope)
    assert {op.operation_id: (op.method, op.path, op.scope) for op in OPERATIONS} == expected


def test_echoed_credentials_keep_error_bodies_valid_per_spec(openapi: OpenAPI) -> None:
    """The echo_credentials fault changes error texts only, never the shapes the spec declares."""
    with EmulatorServer(new_s=0, processing_s=0, seed=7, echo_credentials=True) as server:
        api = Api(server)
        api.get("/documents/000000000000000000000000")
        api.get("/documents?limit=-1")
        api.get("/documents", headers={"Authorization": "Bearer not-a-token"})
        api.post_json("/enrichment/companies", INVALID_ENRICHMENT["companies"])
        api.delete("/enrichment/companies/unknown-id")
        api.token_request(secret="wrong")
        server.add_client("tight", "tight-secret", rate_limit=1, rate_window_s=600)
        api.token_request(client_id="tight", secret="tight-secret")
        api.token_request(client_id="tight", secret="tight-secret")
    errors = [(sent, reply) for sent, reply in api.history if reply.status >= 400]
    assert {reply.status for _, reply in errors} == {400, 401, 404, 422, 429}
    problems = []
    for sent, reply in errors:
        assert b"Authorization: " in reply.body, reply
        request = _mock_request(sent)
        problems += _errors(openapi.validate_response, request, _mock_response(reply))
    assert not problems, "\n".join(problems)
