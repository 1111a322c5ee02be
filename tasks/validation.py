"""Checks a request's parameters and body against its operation's declaration, before any HTTP call.

Every problem is collected (not just the first), each naming the field at fault, so the caller can
fix a request in one round trip.  Values are normalised on the way: integers given as digit strings
become integers, a single value for a repeatable parameter becomes a one-item list.

Text is checked for what JSON can carry but HTTP cannot (`tasks.text`): NUL characters and lone
surrogates anywhere, control characters in headers, and ``.``/``..`` as a path segment (the server
would resolve it to another resource).  Problems never echo such characters back.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tasks.body_problems import body_problems
from tasks.catalog import BodyKind, In, Operation, Param, ResponseKind
from tasks.files import inbox_path_parts
from tasks.text import has_lone_surrogate, printable, text_problem
from worker.errors import ValidationError
from worker.messages import FileInput, Request

Problems = list[dict[str, str]]

#: ``options.on_interrupted`` of ``uploadFile`` (`tasks.creation`): after an interrupted attempt,
#: upload again (the default) or fail with ``outcome_unknown``.
UPLOAD_AGAIN = "upload_again"
ON_INTERRUPTED_CHOICES = (UPLOAD_AGAIN, "fail")


def _coerce(param: Param, value: Any) -> Any:
    """`value` as the parameter's type, or `ValueError` with what was expected."""
    if param.type is int:
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise ValueError("must be an integer")
        try:
            return int(value)
        except ValueError:
            raise ValueError("must be an integer") from None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError("must be a string")
    return str(value)


def _check_text(param: Param, value: Any) -> None:
    if not isinstance(value, str):
        return
    problem = text_problem(value, header=param.location is In.HEADER)
    if problem:
        raise ValueError(problem)
    if param.location is In.PATH and value in (".", ".."):
        raise ValueError("must not be `.` or `..` (the server would read it as a step in the path)")


def _check_value(param: Param, value: Any) -> Any:
    _check_text(param, value)
    value = _coerce(param, value)
    if param.choices and value not in param.choices:
        raise ValueError(f"must be one of {', '.join(param.choices)}")
    if param.minimum is not None and value < param.minimum:
        raise ValueError(f"must be at least {param.minimum}")
    if param.maximum is not None and value > param.maximum:
        raise ValueError(f"must be at most {param.maximum}")
    if param.max_length is not None and len(value) > param.max_length:
        raise ValueError(f"must be at most {param.max_length} characters")
    if param.required and value == "":
        raise ValueError("must not be empty")
    return value


def _check_param(param: Param, raw: Any, problems: Problems) -> Any:
    field = f"params.{param.name}"
    values = raw if isinstance(raw, list) else [raw]
    if isinstance(raw, list) and not param.repeatable:
        problems.append({"field": field, "message": "takes a single value, not a list"})
        return None
    if param.repeatable and not values:
        problems.append({"field": field, "message": "must not be an empty list"})
        return None
    checked = []
    for value in values:
        try:
            checked.append(_check_value(param, value))
        except ValueError as exc:
            problems.append({"field": field, "message": f"{exc} (got {value!r})"})
    return checked if param.repeatable else (checked[0] if checked else None)


def _lookup(params: Mapping[str, Any], param: Param) -> Any:
    if param.name in params:
        return params[param.name]
    if param.location is In.HEADER:  # header names are case-insensitive
        for name, value in params.items():
            if name.lower() == param.name.lower():
                return value
    return None


def check_params(operation: Operation, params: Mapping[str, Any], problems: Problems) -> dict[str, Any]:
    """The declared parameters with normalised values; unknown or bad ones are added to `problems`."""
    declared = {p.name.lower() for p in operation.params}
    for name in params:
        if name.lower() not in declared:
            accepted = ", ".join(p.name for p in operation.params) or "none"
            problems.append(
                {"field": f"params.{printable(name)}", "message": f"unknown parameter (accepted: {accepted})"}
            )
    checked = {}
    for param in operation.params:
        raw = _lookup(params, param)
        if raw is None:
            if param.required:
                problems.append({"field": f"params.{param.name}", "message": "is required"})
            continue
        value = _check_param(param, raw, problems)
        if value is not None:
            checked[param.name] = value
    return checked


def _surrogate_at(body: Any) -> str | None:
    """Where in a JSON body a string or key holds a lone surrogate (which cannot be sent), if anywhere."""
    pending: list[tuple[str, Any]] = [("body", body)]  # a loop, not recursion: bodies may nest deeply
    while pending:
        where, value = pending.pop()
        if isinstance(value, str) and has_lone_surrogate(value):
            return where
        if isinstance(value, dict):
            if any(has_lone_surrogate(str(key)) for key in value):
                return where
            pending.extend((f"{where}.{key}", item) for key, item in value.items())
        elif isinstance(value, list):
            pending.extend((f"{where}.{index}", item) for index, item in enumerate(value))
    return None


def check_body(operation: Operation, body: Any, problems: Problems) -> None:
    """Add a problem when the body does not fit the operation's body kind."""
    kind = operation.body
    broken = _surrogate_at(body)
    if broken:
        problems.append({"field": broken, "message": "must be valid Unicode text (holds a lone surrogate)"})
    elif kind in (BodyKind.NONE, BodyKind.BINARY):
        if body is not None:
            hint = "; give the file in `file`" if kind is BodyKind.BINARY else ""
            problems.append({"field": "body", "message": f"{operation.name} takes no `body`{hint}"})
    elif body is None:
        problems.append({"field": "body", "message": "is required"})
    elif kind is BodyKind.JSON and not isinstance(body, dict | list):
        problems.append({"field": "body", "message": "must be a JSON object"})
    elif kind is BodyKind.TEXT and not isinstance(body, str):
        problems.append({"field": "body", "message": "must be a string"})
    else:
        problems.extend(body_problems(operation.name, body))


def check_file(file: FileInput | None, problems: Problems) -> None:
    """Add a problem for each ``file`` field that cannot be used as text, a header or an inbox path."""
    if file is None:
        return
    for name, header in (("path", False), ("base64", False), ("content_type", True), ("filename", True)):
        value = getattr(file, name)
        if value is None:
            continue
        problem = text_problem(value, header=header)
        if problem is None and name == "path":
            try:
                inbox_path_parts(value)
            except ValueError as exc:
                problem = str(exc)
        if problem:
            problems.append({"field": f"file.{name}", "message": problem})


def check_options(operation: Operation, request: Request, max_items: int, problems: Problems) -> None:
    """Add a problem for each request-level option the operation does not take."""
    if request.file is not None and operation.body is not BodyKind.BINARY:
        problems.append(
            {"field": "file", "message": f"{operation.name} sends no file (only uploadFile does)"}
        )
    if request.output != "outbox" and operation.response is not ResponseKind.BINARY:
        problems.append({"field": "output", "message": f"{operation.name} downloads no file"})
    if (request.all_pages or request.max_items is not None) and not operation.paged:
        field = "all_pages" if request.all_pages else "max_items"
        problems.append({"field": field, "message": f"{operation.name} is not a list operation"})
    if request.max_items is not None and request.max_items > max_items:
        problems.append({"field": "max_items", "message": f"must be at most {max_items} (HYPATOS_MAX_ITEMS)"})
    on_interrupted = request.options.get("on_interrupted")
    if on_interrupted is not None and operation.name != "uploadFile":
        problems.append({"field": "options.on_interrupted", "message": "only uploadFile takes it"})
    elif on_interrupted is not None and on_interrupted not in ON_INTERRUPTED_CHOICES:
        choices = " or ".join(ON_INTERRUPTED_CHOICES)
        problems.append({"field": "options.on_interrupted", "message": f"must be {choices}"})


def _raise_if_any(operation: Operation, problems: Problems) -> None:
    if problems:
        summary = "; ".join(f"{p['field']}: {p['message']}" for p in problems)
        raise ValidationError(f"{operation.name}: {summary}", details=problems)


def validate(operation: Operation, params: Mapping[str, Any], body: Any) -> dict[str, Any]:
    """Normalised parameters, or `ValidationError` listing every field at fault."""
    problems: Problems = []
    checked = check_params(operation, params, problems)
    check_body(operation, body, problems)
    _raise_if_any(operation, problems)
    return checked


def validate_request(operation: Operation, request: Request, max_items: int) -> dict[str, Any]:
    """`validate` plus the request-level options (`file`, `output`, `all_pages`, `max_items`)."""
    problems: Problems = []
    checked = check_params(operation, request.params, problems)
    check_body(operation, request.body, problems)
    check_options(operation, request, max_items, problems)
    check_file(request.file, problems)
    _raise_if_any(operation, problems)
    return checked
