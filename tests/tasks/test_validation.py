"""Validation before any HTTP call: every field at fault is named; good values are normalised."""

from __future__ import annotations

import pytest

from tasks.catalog import CATALOG
from tasks.requests import build_request
from tasks.validation import validate, validate_request
from worker.errors import ValidationError
from worker.messages import ErrorDetail, FileInput, Request, Result, ResultError


def _fields(operation: str, params: dict[str, object], body: object = None) -> list[str]:
    with pytest.raises(ValidationError) as caught:
        validate(CATALOG[operation], params, body)
    return [d["field"] for d in caught.value.details]


def test_given_good_list_params_then_they_are_normalised() -> None:
    checked = validate(
        CATALOG["documentsList"], {"limit": "10", "state": "done", "projectId": ["a", "b"]}, None
    )
    assert checked == {"limit": 10, "state": ["done"], "projectId": ["a", "b"]}


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": 51}, "params.limit"),
        ({"limit": -1}, "params.limit"),
        ({"limit": "ten"}, "params.limit"),
        ({"limit": True}, "params.limit"),
        ({"offset": -5}, "params.offset"),
        ({"sort": "name"}, "params.sort"),
        ({"state": ["done", "nope"]}, "params.state"),
        ({"state": []}, "params.state"),
        ({"fileId": ["a", "b"]}, "params.fileId"),
        ({"colour": "blue"}, "params.colour"),
        ({"fileId": {"a": 1}}, "params.fileId"),
    ],
)
def test_given_a_bad_list_param_then_it_is_named(params: dict[str, object], field: str) -> None:
    assert _fields("documentsList", params) == [field]


def test_given_several_problems_then_all_are_reported() -> None:
    assert sorted(_fields("documentsList", {"limit": 99, "sort": "x", "extra": 1})) == [
        "params.extra",
        "params.limit",
        "params.sort",
    ]


def test_given_a_missing_path_param_then_it_is_required() -> None:
    assert _fields("documentsGetById", {}) == ["params.id"]
    assert _fields("documentsGetById", {"id": ""}) == ["params.id"]


@pytest.mark.parametrize(
    ("operation", "body"),
    [
        ("documentsGetById", {"a": 1}),
        ("documentsUpdateTitle", None),
        ("documentsUpdateTitle", {"t": 1}),
        ("documentsUpdateTransfer", "text"),
    ],
)
def test_given_a_body_that_does_not_fit_the_operation_then_body_is_named(
    operation: str, body: object
) -> None:
    assert _fields(operation, {"id": "d1"}, body) == ["body"]


def test_given_header_params_then_names_match_case_insensitively() -> None:
    body = {"externalId": "S1", "name": "Acme"}
    checked = validate(CATALOG["insertSupplier"], {"x-hy-meta-internal-company-id": "c1"}, body)
    assert checked == {"X-Hy-Meta-Internal-Company-Id": "c1"}


def test_given_checked_params_then_the_request_is_built_from_the_declaration() -> None:
    operation = CATALOG["documentsList"]
    params = validate(operation, {"projectId": ["p1", "p2"], "state": ["done"], "limit": 5}, None)
    request = build_request(operation, params, None)
    assert (request.method, request.path) == ("GET", "/documents")
    assert request.query == (("projectId", "p1"), ("projectId", "p2"), ("limit", "5"), ("state", "done"))
    assert request.body is None


def test_given_a_path_param_with_reserved_characters_then_it_is_percent_encoded() -> None:
    operation = CATALOG["deleteSupplier"]
    request = build_request(operation, validate(operation, {"externalId": "a/b c"}, None), None)
    assert request.path == "/enrichment/suppliers/a%2Fb%20c"


def test_given_a_text_body_then_it_is_sent_as_text_plain() -> None:
    operation = CATALOG["documentsUpdateTitle"]
    request = build_request(operation, {"id": "d"}, "Invoice 42")
    assert request.body == b"Invoice 42" and request.content_type.startswith("text/plain")


def test_given_a_body_that_breaks_the_vendor_schema_then_each_field_is_named() -> None:
    fields = _fields("insertSupplier", {}, {"externalId": "S1", "countryCode": 49})
    assert sorted(fields) == ["body.countryCode", "body.name"]
    assert _fields("documentUpdateExternalData", {"id": "d"}, {f"k{i}": i for i in range(21)}) == ["body"]


# --- text that cannot be sent -----------------------------------------------------------------------

NUL, LONE_SURROGATE = "\x00", "\ud800"


def _details(operation: str, params: dict[str, object], body: object = None) -> list[dict[str, str]]:
    with pytest.raises(ValidationError) as caught:
        validate(CATALOG[operation], params, body)
    details = caught.value.details
    # whatever was refused, the failed result can be written as JSON
    Result(
        id="r",
        connection="c",
        operation=operation,
        status="failed",
        http_status=None,
        data=None,
        error=ResultError(
            code="validation_error",
            message=caught.value.message,
            retryable=False,
            details=[ErrorDetail(**d) for d in details],
        ),
        attempts=0,
        duration_ms=0,
    ).model_dump_json()
    return details


@pytest.mark.parametrize("segment", [".", ".."])
def test_given_a_dot_segment_as_a_path_param_then_it_is_refused(segment: str) -> None:
    assert _fields("retrieveDocumentStates", {"id": segment}) == ["params.id"]
    assert _fields("deleteSupplier", {"externalId": segment}) == ["params.externalId"]


def test_given_dots_inside_a_path_param_then_they_travel_inside_one_segment() -> None:
    operation = CATALOG["deleteSupplier"]
    request = build_request(operation, validate(operation, {"externalId": "../x"}, None), None)
    assert request.path == "/enrichment/suppliers/..%2Fx"


@pytest.mark.parametrize("bad", [NUL, LONE_SURROGATE])
@pytest.mark.parametrize(
    ("operation", "params", "field"),
    [
        ("documentsGetById", {"id": "d{bad}"}, "params.id"),
        ("documentsList", {"fileId": "f{bad}"}, "params.fileId"),
        ("documentsList", {"projectId": ["p1", "p{bad}"]}, "params.projectId"),
        ("projectsList", {"search": "s{bad}"}, "params.search"),
        ("projectsList", {"offset": "1{bad}"}, "params.offset"),
        (
            "insertSupplier",
            {"X-Hy-Meta-Internal-Company-Id": "c{bad}"},
            "params.X-Hy-Meta-Internal-Company-Id",
        ),
    ],
)
def test_given_nul_or_a_lone_surrogate_in_any_param_then_it_is_refused_naming_the_field(
    bad: str, operation: str, params: dict[str, object], field: str
) -> None:
    filled = {
        k: [x.format(bad=bad) for x in v] if isinstance(v, list) else str(v).format(bad=bad)
        for k, v in params.items()
    }
    body = {"externalId": "S1", "name": "Acme"} if operation == "insertSupplier" else None
    assert field in [d["field"] for d in _details(operation, filled, body)]


@pytest.mark.parametrize("value", ["c1\r\nX-Injected: yes", "c1\n", "c1\t", "c1\x7f", "c1\x85"])
def test_given_a_control_character_in_a_header_param_then_it_is_refused(value: str) -> None:
    body = {"externalId": "S1", "name": "Acme"}
    details = _details("insertSupplier", {"X-Hy-Meta-Internal-Company-Id": value}, body)
    assert [d["field"] for d in details] == ["params.X-Hy-Meta-Internal-Company-Id"]
    assert "control characters" in details[0]["message"]


def test_given_control_characters_in_a_query_param_then_they_are_sent_percent_encoded() -> None:
    assert validate(CATALOG["projectsList"], {"search": "a\tb"}, None) == {"search": "a\tb"}


def test_given_an_unknown_param_whose_name_cannot_be_sent_then_it_is_named_escaped() -> None:
    details = _details("documentsList", {f"x{LONE_SURROGATE}{NUL}": 1})
    assert details[0]["field"] == "params.x\\ud800\\x00"


def test_given_a_lone_surrogate_in_a_body_then_its_place_is_named() -> None:
    body = {"externalId": "S1", "name": "Acme", "addresses": [{"street": f"Main {LONE_SURROGATE}"}]}
    assert [d["field"] for d in _details("insertSupplier", {}, body)] == ["body.addresses.0.street"]
    assert [d["field"] for d in _details("insertSupplier", {}, {LONE_SURROGATE: 1})] == ["body"]
    assert [d["field"] for d in _details("documentsUpdateTitle", {"id": "d"}, LONE_SURROGATE)] == ["body"]


@pytest.mark.parametrize(
    ("file", "field"),
    [
        ({"path": "inv\x00.pdf"}, "file.path"),
        ({"path": "../inv.pdf"}, "file.path"),
        ({"path": "/etc/passwd"}, "file.path"),
        ({"path": "a//b.pdf"}, "file.path"),
        ({"base64": "JVBERi0xLjcK", "filename": "a\r\nb.pdf"}, "file.filename"),
        ({"base64": "JVBERi0xLjcK", "content_type": "application/pdf\r\nX: y"}, "file.content_type"),
        ({"base64": "JVBER\x00i0xLjcK"}, "file.base64"),
    ],
)
def test_given_a_file_field_that_cannot_be_used_then_the_request_is_refused_naming_it(
    file: dict[str, str], field: str
) -> None:
    request = Request(id="r", connection="c", operation="uploadFile", file=FileInput(**file))
    with pytest.raises(ValidationError) as caught:
        validate_request(CATALOG["uploadFile"], request, 100)
    assert [d["field"] for d in caught.value.details] == [field]
