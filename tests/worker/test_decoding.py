"""The entry rules for request messages: what is dead-lettered, what is answered, and that nothing else
escapes the decoder."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from worker.decoding import Undeliverable, decode_request, find_problems

LIMITS = {"max_bytes": 4096, "max_depth": 8}


def decode(body: bytes) -> object:
    return decode_request(body, **LIMITS)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"x" * 5000, "more than HYPATOS_MAX_REQUEST_BYTES"),
        (b"not json", "not valid UTF-8 JSON"),
        (b"[" * 3000, "not valid UTF-8 JSON"),  # deeper than any decoder goes: never a RecursionError
        ('{"id": "\u00e9"}'.encode("latin-1"), "not valid UTF-8 JSON"),
        (b'{"id": "a", "x": 1e999}', "not valid UTF-8 JSON"),
        (b"[1, 2]", "not an object"),
        (b'{"connection": "a"}', "`id` must be a string"),
        (b'{"id": ""}', "`id` must be a string"),
        (b'{"id": 12}', "`id` must be a string"),
        (json.dumps({"id": "x" * 129}).encode(), "`id` must be a string"),
        (b'{"id": "\\ud800"}', "`id` is not valid Unicode"),
    ],
)
def test_given_a_message_without_a_usable_id_then_it_is_undeliverable_with_the_reason(
    body: bytes, reason: str
) -> None:
    with pytest.raises(Undeliverable, match=reason.replace("`", ".")):
        decode(body)


def test_given_a_byte_order_mark_then_the_request_decodes() -> None:
    assert decode(b'\xef\xbb\xbf{"id": "r1"}').document == {"id": "r1"}  # type: ignore[attr-defined]


def test_given_deep_nesting_with_a_usable_id_then_it_is_answered_with_the_field_at_fault() -> None:
    body = json.dumps({"id": "r1", "params": {"a": [[[[[[[[[1]]]]]]]]]}}).encode()
    decoded = decode(body)
    assert decoded.id == "r1"  # type: ignore[attr-defined]
    [problem] = decoded.problems  # type: ignore[attr-defined]
    assert problem["field"].startswith("params.a") and "nested deeper than 8" in problem["message"]


def test_given_lone_surrogates_outside_the_id_then_each_field_is_named() -> None:
    decoded = decode(b'{"id": "r1", "connection": "\\ud800", "params": {"x": "ok", "y": "\\udfff"}}')
    fields = sorted(p["field"] for p in decoded.problems)  # type: ignore[attr-defined]
    assert fields == ["connection", "params.y"]


def test_a_small_request_skips_the_walk_and_has_no_problems() -> None:
    assert decode(b'{"id": "r1", "connection": "c", "operation": "o"}').problems == []  # type: ignore[attr-defined]


def test_the_walk_is_iterative_and_bounded() -> None:
    value: object = 1
    for _ in range(100_000):
        value = [value]
    assert len(find_problems(value, 10)) == 1


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300) | st.text(max_size=300).map(lambda t: t.encode("utf-8", "surrogatepass")))
def test_whatever_the_bytes_the_decoder_returns_or_raises_undeliverable(body: bytes) -> None:
    try:
        decoded = decode(body)
    except Undeliverable:
        return
    assert isinstance(decoded.document, dict)  # type: ignore[attr-defined]
