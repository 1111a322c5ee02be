"""The rules a request message must meet where it enters, before anything else looks at it.

A request body is UTF-8 JSON (a leading byte-order mark is tolerated; the message's
``content_type`` and ``content_encoding`` are ignored), at most ``HYPATOS_MAX_REQUEST_BYTES`` long,
and a JSON object whose ``id`` is a string of 1 to 128 characters.  A message that breaks one of
these rules has nothing a result could be addressed to: `decode_request` raises `Undeliverable` and
the message goes to the dead-letter queue, alone, whatever the decoder did (it never raises anything
else).

A decodable request with a usable id may still be malformed deeper down: nested deeper than
``HYPATOS_MAX_REQUEST_DEPTH``, or holding text that is not valid Unicode (a lone surrogate escape such
as ``"\\ud800"``).  Those are answered, not dead-lettered: `Decoded.problems` names each field at
fault, and the request gets a failed ``invalid_request`` result.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import orjson

from worker.messages import MAX_ID_LENGTH

_BOM = b"\xef\xbb\xbf"


class Undeliverable(Exception):
    """Raised when a message has nothing a result could be addressed to; the text says why."""


@dataclass(frozen=True)
class Decoded:
    """A request object with a usable id, and the problems found in the rest of it."""

    document: dict[str, Any]
    #: ``{"field", "message"}`` for each part that cannot be processed (too deep, invalid text).
    problems: list[dict[str, str]] = field(default_factory=list)

    @property
    def id(self) -> str:
        """The request's id (always usable)."""
        return str(self.document["id"])


def echo(value: Any, limit: int = 256) -> str | None:
    """`value` when it is valid text of at most `limit` characters (safe to copy into results and logs)."""
    if not isinstance(value, str) or len(value) > limit or not _is_valid_text(value):
        return None
    return value


def _is_valid_text(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _parse(body: bytes) -> tuple[Any, bool]:
    """The JSON value of `body`, and whether all its text is known to be valid Unicode.

    orjson refuses lone surrogate escapes; the standard decoder keeps them, so that such a request
    can still be answered (its fields are reported later).  Neither may raise anything but
    `Undeliverable` from here: deep nesting makes the standard decoder raise `RecursionError`.
    """
    try:
        return orjson.loads(body), True
    except orjson.JSONDecodeError as exc:
        if "surrogate" not in str(exc):
            raise Undeliverable(f"body is not valid UTF-8 JSON: {exc}") from None
    try:
        return json.loads(body), False
    except (ValueError, RecursionError) as exc:
        raise Undeliverable(f"body is not valid UTF-8 JSON: {type(exc).__name__}") from None


def find_problems(value: Any, max_depth: int, *, check_text: bool = True) -> list[dict[str, str]]:
    """Fields nested deeper than `max_depth` or holding invalid text (iterative: no recursion limit)."""
    problems: list[dict[str, str]] = []
    stack: list[tuple[Any, str, int]] = [(value, "", 0)]
    while stack and len(problems) < 20:
        node, path, depth = stack.pop()
        if isinstance(node, str):
            if check_text and not _is_valid_text(node):
                problems.append({"field": path or "request", "message": "is not valid Unicode text"})
            continue
        if not isinstance(node, dict | list):
            continue
        if depth >= max_depth:
            message = f"is nested deeper than {max_depth} levels (HYPATOS_MAX_REQUEST_DEPTH)"
            problems.append({"field": path or "request", "message": message})
            continue
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for key, child in items:
            name = key if isinstance(key, str) and _is_valid_text(key) else "?"
            if isinstance(key, str) and name == "?":
                problems.append(
                    {"field": f"{path}.?" if path else "?", "message": "a key is not valid Unicode"}
                )
            stack.append((child, f"{path}.{name}" if path else str(name), depth + 1))
    return problems


def decode_request(body: bytes, *, max_bytes: int, max_depth: int) -> Decoded:
    """The request in `body`, or `Undeliverable` saying why there is none; see the module docstring."""
    if len(body) > max_bytes:
        raise Undeliverable(
            f"message is {len(body)} bytes, more than HYPATOS_MAX_REQUEST_BYTES ({max_bytes})"
        )
    if body.startswith(_BOM):
        body = body[len(_BOM) :]
    document, text_is_valid = _parse(body)
    if not isinstance(document, dict):
        raise Undeliverable(f"body is JSON {type(document).__name__}, not an object")
    request_id = document.get("id")
    if not isinstance(request_id, str) or not 1 <= len(request_id) <= MAX_ID_LENGTH:
        raise Undeliverable(f"`id` must be a string of 1 to {MAX_ID_LENGTH} characters")
    if not _is_valid_text(request_id):
        raise Undeliverable("`id` is not valid Unicode text")
    # Fewer brackets than the depth limit cannot nest that deep: most requests skip the walk.
    if text_is_valid and body.count(b"{") + body.count(b"[") < max_depth:
        return Decoded(document)
    return Decoded(document, find_problems(document, max_depth, check_text=not text_is_valid))
