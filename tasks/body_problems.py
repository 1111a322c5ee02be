"""Problems with a request body, as ``{field, message}`` pairs a caller can act on.

`body_problems` validates a body with its model from `tasks.bodies` (or its text rule) and turns each
pydantic error into a message that says what is expected, at a field named the way the caller wrote
it (``body.invoiceLines[0].quantity``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from tasks.bodies import BODY_MODELS, TEXT_CHECKS
from tasks.body_types import PATTERN_RULES, shown

#: One problem per field at fault: ``{"field": "body.name", "message": "is required"}``.
Problems = list[dict[str, str]]

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

_FIXED_MESSAGES: Mapping[str, str] = MappingProxyType(
    {"missing": "is required", "union_tag_not_found": "is required"}
)
_TYPE_MESSAGES: Mapping[str, str] = MappingProxyType(
    {
        "string_type": "must be a string",
        "bool_type": "must be a boolean",
        "float_type": "must be a number",
        "int_type": "must be an integer",
        "list_type": "must be a list",
        "dict_type": "must be an object",
        "model_type": "must be an object",
        "model_attributes_type": "must be an object",
    }
)
_SIZE_ERRORS = frozenset({"too_short", "too_long", "string_too_short", "string_too_long"})


def _size_message(kind: str, ctx: dict[str, Any], size: int) -> str:
    """Messages for list and string length limits, with the size found."""
    verb, unit = ("be", "characters") if kind.startswith("string") else ("have", "items")
    if kind.endswith("too_long"):
        return f"must {verb} at most {ctx['max_length']} {unit} (got {size})"
    if ctx["min_length"] == 1:
        return "must not be empty"
    return f"must {verb} at least {ctx['min_length']} {unit} (got {size})"


def _message(error: ErrorDetails) -> str:
    """A short message saying what is expected, from one pydantic error."""
    kind, ctx, value = error["type"], error.get("ctx") or {}, error.get("input")
    if kind in _FIXED_MESSAGES:
        return _FIXED_MESSAGES[kind]
    if kind in _TYPE_MESSAGES:
        return f"{_TYPE_MESSAGES[kind]} (got {shown(value)})"
    if kind in _SIZE_ERRORS and isinstance(value, str | list | dict):
        return _size_message(kind, ctx, len(value))
    if kind == "literal_error":
        return f"must be {ctx['expected']} (got {shown(value)})"
    if kind == "union_tag_invalid":
        return f"must be one of {ctx['expected_tags']} (got {shown(ctx['tag'])})"
    if kind == "string_pattern_mismatch":
        rule = PATTERN_RULES.get(ctx["pattern"], f"must match {ctx['pattern']}")
        return f"{rule} (got {shown(value)})"
    return error["msg"]


def _field_name(loc: tuple[int | str, ...]) -> str:
    """``body``, ``body.name``, ``body.lines[0].name``; odd keys (spaces, dots) as ``body["a b"]``."""
    name = "body"
    for part in loc:
        if isinstance(part, int):
            name += f"[{part}]"
        elif _IDENTIFIER.fullmatch(part):
            name += f".{part}"
        else:
            name += f'["{part}"]'
    return name


def _location(error: ErrorDetails, tagged: frozenset[str]) -> tuple[int | str, ...]:
    """The error's place in the body, without the tags pydantic adds inside discriminated unions."""
    loc = tuple(error["loc"])
    if error["type"] in ("union_tag_invalid", "union_tag_not_found"):
        ctx = error.get("ctx") or {}
        return (*loc, str(ctx["discriminator"]).strip("'"))
    if len(loc) > 1 and loc[0] in tagged:
        return (loc[0], *loc[2:])
    return loc


def _tagged_fields(model: type[BaseModel]) -> frozenset[str]:
    """Top-level fields holding a discriminated union (``ocr``, ``members`` in projectsCreate)."""
    return frozenset(f.alias or n for n, f in model.model_fields.items() if f.discriminator)


def _model_problems(model: type[BaseModel], body: object) -> Problems:
    try:
        model.model_validate(body)
    except ValidationError as exc:
        tagged = _tagged_fields(model)
        return [
            {"field": _field_name(_location(e, tagged)), "message": _message(e)}
            for e in exc.errors(include_url=False)
        ]
    return []


def body_problems(operation_name: str, body: object) -> Problems:
    """Problems with `body` for the operation (empty when fine or when the operation has no body rules)."""
    if operation_name in BODY_MODELS:
        return _model_problems(BODY_MODELS[operation_name], body)
    if operation_name in TEXT_CHECKS:
        if not isinstance(body, str):
            return [{"field": "body", "message": f"must be a string (got {shown(body)})"}]
        return [{"field": "body", "message": m} for m in TEXT_CHECKS[operation_name](body)]
    return []
