"""Human- and machine-readable descriptions of the catalog, derived from the declarations."""

from __future__ import annotations

from typing import Any

from tasks.catalog import CATALOG, Operation, Param
from tasks.service_operations import SERVICE_OPERATIONS


def describe_param(param: Param) -> dict[str, Any]:
    """One parameter as a plain dict (for ``operations --json``)."""
    described: dict[str, Any] = {
        "name": param.name,
        "in": str(param.location),
        "type": "integer" if param.type is int else "string",
        "required": param.required,
        "repeatable": param.repeatable,
    }
    optional = {
        "choices": list(param.choices) or None,
        "minimum": param.minimum,
        "maximum": param.maximum,
        "max_length": param.max_length,
        "description": param.description or None,
    }
    described.update({key: value for key, value in optional.items() if value is not None})
    return described


def describe_operation(operation: Operation) -> dict[str, Any]:
    """One operation as a plain dict."""
    return {
        "name": operation.name,
        "method": operation.method,
        "path": operation.path,
        "scope": operation.scope,
        "body": str(operation.body),
        "response": str(operation.response),
        "success_status": operation.success_status,
        "creates": operation.creates,
        "paged": operation.paged,
        "summary": operation.summary,
        "params": [describe_param(p) for p in operation.params],
    }


def describe_catalog() -> list[dict[str, Any]]:
    """Every operation, sorted by name, then the service operations."""
    described = [describe_operation(CATALOG[name]) for name in sorted(CATALOG)]
    described += [
        {"name": name, "service": True, "summary": op.summary, "params": []}
        for name, op in SERVICE_OPERATIONS.items()
    ]
    return described


def _param_label(param: Param) -> str:
    label = param.name + ("*" if param.required else "") + ("[]" if param.repeatable else "")
    return label


def format_catalog() -> str:
    """A table for people: name, method and path, scope, parameters (``*`` required, ``[]`` repeatable)."""
    rows = [("OPERATION", "METHOD PATH", "SCOPE", "BODY", "PARAMS")]
    for name in sorted(CATALOG):
        op = CATALOG[name]
        params = ", ".join(_param_label(p) for p in op.params) or "-"
        rows.append((op.name, f"{op.method} {op.path}", op.scope, str(op.body), params))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = [
        "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:4])) + "  " + row[4] for row in rows
    ]
    lines += [
        f"{name.ljust(widths[0])}  (service operation) {op.summary}"
        for name, op in SERVICE_OPERATIONS.items()
    ]
    return "\n".join(lines)


def markdown_catalog() -> str:
    """The catalog as the Markdown table in the README (a test keeps the README in step)."""
    lines = [
        "| operation | method and path | scope | body | parameters (`*` required, `[]` repeatable) |",
        "|---|---|---|---|---|",
    ]
    for name in sorted(CATALOG):
        op = CATALOG[name]
        params = ", ".join(f"`{_param_label(p)}` ({p.location})" for p in op.params) or "-"
        lines.append(f"| `{op.name}` | `{op.method} {op.path}` | `{op.scope}` | {op.body} | {params} |")
    return "\n".join(lines)
