"""Validation before any HTTP call: every field at fault is named; good values are normalised."""

from __future__ import annotations

import pytest

from tasks.catalog import CATALOG
from tasks.requests import build_request
from tasks.validation import validate
from worker.errors import ValidationError


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
        "params.extra", "params.limit", "params.sort"
    ]  # fmt: skip


def test_given_a_missing_path_param_then_it_is_required() -> None:
    assert _fields("documentsGetById", {}) == ["params.id"]
    assert _fields("documentsGetById", {"id": ""}) == ["params.id"]


@pytest.mark.parametrize(
    ("operation", "body"),
    [("documentsGetById", {"a": 1}), ("documentsUpdateTitle", None), ("documentsUpdateTitle", {"t": 1}),
     ("documentsUpdateTransfer", "text")],
)  # fmt: skip
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
