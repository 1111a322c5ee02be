"""`serialize_result`: the one way a result becomes bytes, redacted and bounded, and never raising."""

from __future__ import annotations

import json
from typing import Any

from worker.logging import REDACTED, secret_registry
from worker.messages import Result
from worker.results import serialize_result


def result(data: Any, **fields: Any) -> Result:
    values = {
        "id": "r1",
        "connection": "main",
        "operation": "documentsGetById",
        "status": "succeeded",
        "http_status": 200,
        "data": data,
        "error": None,
        "attempts": 1,
        "duration_ms": 2.5,
    }
    return Result(**{**values, **fields})


def test_a_plain_result_is_its_json_unchanged() -> None:
    original = result({"id": "doc-1", "title": "Rechnung Ä"})
    published, body = serialize_result(original, scope="main", max_bytes=4096)
    assert published == original and json.loads(body) == original.model_dump(mode="json")


def test_given_text_that_is_not_unicode_then_unexpected_response_replaces_the_data() -> None:
    published, body = serialize_result(result({"title": "\ud800"}), scope="main", max_bytes=4096)
    assert published.status == "failed" and published.data is None and published.http_status == 200
    assert published.error is not None and published.error.code == "unexpected_response"
    assert published.error.retryable is False and json.loads(body)["error"]["code"] == "unexpected_response"


def test_given_data_nested_too_deeply_then_unexpected_response_replaces_it() -> None:
    nested: list[Any] = []
    for _ in range(5000):
        nested = [nested]
    published, _ = serialize_result(result(nested), scope="main", max_bytes=4096)
    assert published.error is not None and published.error.code == "unexpected_response"


def test_given_a_result_past_the_limit_then_result_too_large_within_the_limit() -> None:
    published, body = serialize_result(result({"text": "x" * 5000}), scope="main", max_bytes=2048)
    assert published.error is not None and published.error.code == "result_too_large"
    assert "HYPATOS_MAX_RESULT_BYTES (2048)" in published.error.message
    assert len(body) <= 2048 and published.data is None and published.attempts == 1


def test_given_a_token_of_the_connection_in_the_data_then_it_is_redacted_in_the_bytes() -> None:
    secret_registry.add("eyJ-known-access-token-123", scope="main")
    echoed = result({"echo": "Bearer eyJ-known-access-token-123"})
    _, body = serialize_result(echoed, scope="main", max_bytes=4096)
    assert b"eyJ-known-access-token-123" not in body and REDACTED.encode() in body


def test_given_a_client_secret_in_json_escaped_form_then_it_is_redacted_too() -> None:
    secret_registry.add('se"cret-of-acme', scope="acme")
    _, body = serialize_result(result({"detail": 'secret se"cret-of-acme'}), scope="acme", max_bytes=4096)
    assert b"cret-of-acme" not in body
