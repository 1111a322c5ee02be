"""Generated malformed request messages (hypothesis), each with what the service must do with it.

A message either has a usable ``id`` (a JSON object whose ``id`` is a string of 1 to 128 characters)
and must get a failed result with `expected_code`, or has none and must be dead-lettered. Messages with
a usable id get a unique id when they are published (`Malformed.encode`).
"""

from __future__ import annotations

import json
import string
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st

MAX_ID_LENGTH = 128
REQUEST_FIELDS = (
    "id",
    "connection",
    "operation",
    "params",
    "body",
    "file",
    "output",
    "all_pages",
    "max_items",
)
HEX_ID = "62a1f0c4e4b0a1b2c3d4e5f6"
LETTERS = string.ascii_letters


@dataclass(frozen=True)
class Malformed:
    """One generated message: raw bytes, or a request object whose unique ``id`` is added on publishing."""

    kind: str
    raw: bytes | None = None
    request: dict[str, Any] | None = None
    expected_code: str | None = None
    id_suffix: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    #: ``reply_to`` to publish with; ``@<setting>`` names one of the test's queues (e.g. ``@request``).
    reply_to: str | None = None

    def encode(self, unique: str) -> tuple[bytes, str | None]:
        """The body to publish and the usable id it carries (None: it has none)."""
        if self.raw is not None:
            return self.raw, usable_id(self.raw)
        assert self.request is not None
        request_id = (unique + self.id_suffix)[:MAX_ID_LENGTH]
        body = json.dumps({"id": request_id, **self.request}).encode()
        return body, request_id


#: The request-size limit the hostile tests run workers with (HYPATOS_MAX_REQUEST_BYTES).
TEST_MAX_REQUEST_BYTES = 65536
#: Nesting any JSON decoder refuses (the worker's answers deeper-than-HYPATOS_MAX_REQUEST_DEPTH requests,
#: but cannot decode these).
UNDECODABLE_DEPTH = 1100


def _finite(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError("not a finite number")
    return value


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def usable_id(body: bytes, max_bytes: int = TEST_MAX_REQUEST_BYTES) -> str | None:
    """The README's rule, written independently of the worker: a UTF-8 JSON object (a leading BOM
    allowed) of at most `max_bytes`, whose ``id`` is valid text of 1 to 128 characters; else no id."""
    if len(body) > max_bytes:
        return None
    try:
        text = body.decode("utf-8")
        document = json.loads(
            text.removeprefix("\ufeff"), parse_float=_finite, parse_constant=_refuse_constant
        )
    except (ValueError, RecursionError):
        return None
    if not isinstance(document, dict):
        return None
    request_id = document.get("id")
    if not isinstance(request_id, str) or not 1 <= len(request_id) <= MAX_ID_LENGTH:
        return None
    try:
        request_id.encode("utf-8")
    except UnicodeEncodeError:
        return None
    return request_id


# --- building blocks -------------------------------------------------------------------------------

scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=8,
)
not_a_string = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.lists(scalars, max_size=3)
    | st.dictionaries(st.text(max_size=5), scalars, max_size=2)
)
not_an_object = (
    st.none() | st.booleans() | st.integers() | st.text(max_size=10) | st.lists(scalars, max_size=3)
)
odd_text = st.text(min_size=1, max_size=12)
id_suffixes = st.text(max_size=MAX_ID_LENGTH)


def _raw(kind: str, values: st.SearchStrategy[bytes]) -> st.SearchStrategy[Malformed]:
    return values.map(lambda body: Malformed(kind, raw=body))


def _json_raw(kind: str, values: st.SearchStrategy[Any]) -> st.SearchStrategy[Malformed]:
    return _raw(kind, values.map(lambda value: json.dumps(value).encode()))


def _answerable(
    kind: str, code: str, requests: st.SearchStrategy[dict[str, Any]]
) -> st.SearchStrategy[Malformed]:
    return st.builds(
        lambda request, suffix: Malformed(kind, request=request, expected_code=code, id_suffix=suffix),
        requests,
        id_suffixes,
    )


# --- messages without a usable id: dead letters ------------------------------------------------------

valid_shape = {"connection": "main", "operation": "documentsGetById", "params": {"id": HEX_ID}}
unusable_ids = not_a_string | st.just("") | st.text(min_size=MAX_ID_LENGTH + 1, max_size=MAX_ID_LENGTH + 40)

unanswerable = st.one_of(
    _raw("raw bytes", st.binary(max_size=64)),
    _raw("text that is not JSON", st.text(max_size=40).map(lambda text: ("{" + text).encode())),
    _raw("plain text", st.text(max_size=40).map(str.encode)),
    _json_raw("JSON that is not an object", json_values.filter(lambda value: not isinstance(value, dict))),
    _json_raw(
        "object without id",
        st.dictionaries(st.text(max_size=10).filter(lambda key: key != "id"), json_values, max_size=5),
    ),
    _json_raw("request without id", st.just(valid_shape)),
    _json_raw("unusable id", unusable_ids.map(lambda bad: {"id": bad, **valid_shape})),
)


# --- messages with a usable id: a failed result with a clear code ------------------------------------


def _without(key: str) -> dict[str, Any]:
    return {k: v for k, v in valid_shape.items() if k != key}


invalid_requests = st.one_of(
    st.sampled_from([_without("connection"), _without("operation")]),
    not_a_string.map(lambda bad: {**valid_shape, "connection": bad}),
    not_a_string.map(lambda bad: {**valid_shape, "operation": bad}),
    st.sampled_from([{**valid_shape, "connection": ""}, {**valid_shape, "operation": ""}]),
    not_an_object.map(lambda bad: {**valid_shape, "params": bad}),
    st.builds(
        lambda key, value: {**valid_shape, key: value},
        odd_text.filter(lambda key: key not in REQUEST_FIELDS),
        json_values,
    ),
    (
        st.integers(2, 100) | st.lists(scalars, max_size=2) | st.text(alphabet="qxz", min_size=2, max_size=5)
    ).map(lambda bad: {**valid_shape, "all_pages": bad}),
    (st.integers(max_value=0) | st.text(alphabet=LETTERS, min_size=1, max_size=5)).map(
        lambda bad: {**valid_shape, "max_items": bad}
    ),
    st.text(max_size=10)
    .filter(lambda s: s not in ("outbox", "base64"))
    .map(lambda bad: {**valid_shape, "output": bad}),
    (st.integers() | st.text(max_size=10) | st.lists(scalars, max_size=2)).map(
        lambda bad: {**valid_shape, "file": bad}
    ),
)

unknown_operations = st.builds(
    lambda name, params: {"connection": "main", "operation": name, "params": params},
    st.text(max_size=20).map(lambda text: "noSuchOperation" + text)
    | st.sampled_from(["documentsGet", "filesDelete"]),
    st.dictionaries(st.text(max_size=6), scalars, max_size=3),
)

unknown_connections = st.builds(
    lambda name, operation: {"connection": name, **operation},
    st.text(max_size=20).map(lambda text: "nope-" + text),
    st.sampled_from(
        [
            {"operation": "documentsGetById", "params": {"id": HEX_ID}},
            {"operation": "companiesList"},
            {"operation": "projectsList", "params": {"limit": 5}},
        ]
    ),
)

bad_integers = (
    st.integers(min_value=51)
    | st.integers(max_value=-1)
    | st.text(alphabet=LETTERS, min_size=1, max_size=6)
    | st.booleans()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.lists(st.integers(0, 10), min_size=1, max_size=3)
)
bad_states = st.text(max_size=10).map(lambda text: "zz" + text)
unknown_param_names = st.text(max_size=10).map(lambda text: "zz" + text)
not_text = (
    st.booleans()
    | st.integers()
    | st.lists(scalars, max_size=2)
    | st.dictionaries(st.text(max_size=4), scalars)
)
non_null = json_values.filter(lambda value: value is not None)


def _on_main(operation: str, params: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"connection": "main", "operation": operation, "params": params, **fields}


validation_errors = st.one_of(
    st.just(_on_main("documentsGetById", {})),
    st.just(_on_main("documentsGetById", {"id": ""})),
    st.builds(
        lambda name, value: _on_main("documentsGetById", {"id": HEX_ID, name: value}),
        unknown_param_names,
        scalars.filter(lambda v: v is not None),
    ),
    st.builds(lambda name: _on_main("companiesList", {name: "1"}), unknown_param_names),
    bad_integers.map(lambda bad: _on_main("documentsList", {"limit": bad})),
    bad_integers.filter(lambda v: not isinstance(v, int) or v < 0).map(
        lambda bad: _on_main("projectsList", {"offset": bad})
    ),
    bad_states.map(lambda bad: _on_main("documentsList", {"state": ["done", bad]})),
    st.just(_on_main("documentsList", {"state": []})),
    bad_states.map(lambda bad: _on_main("documentsList", {"sort": bad})),
    non_null.map(lambda body: _on_main("documentsGetById", {"id": HEX_ID}, body=body)),
    not_text.map(lambda body: _on_main("documentsUpdateTitle", {"id": HEX_ID}, body=body)),
    st.just(_on_main("documentsUpdateTitle", {"id": HEX_ID})),
    st.just(_on_main("processFileIntoDocument", {})),
    st.builds(
        lambda file_id: _on_main(
            "processFileIntoDocument", {}, body={"fileId": file_id, "projectId": HEX_ID}
        ),
        not_a_string.filter(lambda v: v is not None),
    ),
    st.just(_on_main("processFileIntoDocument", {}, body={"projectId": HEX_ID})),
)

answerable = st.one_of(
    _answerable("invalid request", "invalid_request", invalid_requests),
    _answerable("unknown operation", "unknown_operation", unknown_operations),
    _answerable("unknown connection", "unknown_connection", unknown_connections),
    _answerable("invalid parameters or body", "validation_error", validation_errors),
)


def generate(strategy: st.SearchStrategy[Malformed], count: int, seed: int) -> list[Malformed]:
    """`count` messages drawn from `strategy` (hypothesis, generation phase only: nothing to shrink).

    The same `seed` gives the same messages, so a failure can be reproduced.
    """
    drawn: list[Malformed] = []

    @hypothesis_seed(seed)
    @settings(
        max_examples=count,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def draw(message: Malformed) -> None:
        drawn.append(message)

    draw()
    assert len(drawn) >= count, f"hypothesis generated only {len(drawn)} messages"
    return drawn[:count]


# --- hostile messages (a careless producer or an attacker at the AMQP boundary) ----------------------


def _nested(depth: int) -> Any:
    value: Any = 1
    for level in range(depth):
        value = [value] if level % 2 else {"a": value}
    return value


def _deep_raw(depth: int) -> bytes:
    return b'{"id": "deep", "params": ' + b"[" * depth + b"]" * depth + b"}"


hostile_unanswerable = st.one_of(
    st.integers(TEST_MAX_REQUEST_BYTES // 2, TEST_MAX_REQUEST_BYTES).map(
        lambda n: Malformed(
            "larger than HYPATOS_MAX_REQUEST_BYTES",
            raw=json.dumps({"id": "big", **valid_shape, "x": "\u00e9" * n}).encode(),
        )
    ),
    st.integers(UNDECODABLE_DEPTH, 20_000).map(
        lambda d: Malformed("nested too deep to decode", raw=_deep_raw(d))
    ),
    st.text(max_size=10).map(
        lambda t: Malformed(
            "id with a lone surrogate", raw=json.dumps({"id": t + "\ud800", **valid_shape}).encode()
        )
    ),
    st.text(min_size=1, max_size=10).map(
        lambda t: Malformed("Latin-1 bytes", raw=('{"id": "\u00e9' + t + '"}').encode("latin-1", "replace"))
    ),
    st.sampled_from([b"1e999", b"-1e999", b"NaN", b"Infinity"]).map(
        lambda n: Malformed("non-finite number", raw=b'{"id": "n", "x": ' + n + b"}")
    ),
)

_SURROGATE = "\udc80"

hostile_answerable = st.one_of(
    _answerable(
        "nested deeper than HYPATOS_MAX_REQUEST_DEPTH",
        "invalid_request",
        st.integers(40, 300).map(lambda d: {**valid_shape, "params": {"id": HEX_ID, "x": _nested(d)}}),
    ),
    _answerable(
        "lone surrogate in a field",
        "invalid_request",
        st.sampled_from(
            [
                {**valid_shape, "connection": "main" + _SURROGATE},
                {**valid_shape, "operation": _SURROGATE},
                {**valid_shape, "params": {"id": HEX_ID + _SURROGATE}},
                _on_main("documentsUpdateTitle", {"id": HEX_ID}, body="title " + _SURROGATE),
                {**valid_shape, "params": {"id": HEX_ID, _SURROGATE: 1}},
            ]
        ),
    ),
    _answerable(
        "NUL in a file path",
        "validation_error",
        st.text(max_size=8).map(lambda t: _on_main("uploadFile", {}, file={"path": f"inbox{t}\u0000.pdf"})),
    ),
    _answerable(
        "CR/LF in a header parameter",
        "validation_error",
        st.sampled_from(["\r\n", "\n", "\r"]).map(
            lambda eol: _on_main(
                "insertSupplier",
                {"X-Hy-Meta-Internal-Company-Id": f"c1{eol}X-Injected: 1"},
                body={"externalId": "S1", "name": "Acme"},
            )
        ),
    ),
    _answerable(
        "dot segment in a path parameter",
        "validation_error",
        st.sampled_from([".", ".."]).map(lambda dots: _on_main("retrieveDocumentStates", {"id": dots})),
    ),
    _answerable(
        "NUL in a path parameter",
        "validation_error",
        st.just(_on_main("documentsGetById", {"id": HEX_ID + "\u0000"})),
    ),
    st.sampled_from(["@request", "@dead", "@tasks", "celery_delayed_3"]).map(
        lambda queue: Malformed(
            "reply_to naming an internal queue",
            request=dict(valid_shape),
            expected_code="invalid_request",
            reply_to=queue,
        )
    ),
)
