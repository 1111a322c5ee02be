"""Turns an operation, its checked parameters and its body into an `ApiRequest`."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from tasks.catalog import BodyKind, In, Operation
from tasks.files import FILENAME_HEADER, Upload
from worker.transport import ApiRequest, FileBody, ResponseSink


def _path(operation: Operation, params: dict[str, Any]) -> str:
    values = {p.name: quote(str(params[p.name]), safe="") for p in operation.path_params}
    return operation.path.format(**values)


def _query(operation: Operation, params: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    pairs = []
    for param in operation.params:
        if param.location is In.QUERY and param.name in params:
            values = params[param.name] if param.repeatable else [params[param.name]]
            pairs.extend((param.name, str(value)) for value in values)
    return tuple(pairs)


def _headers(operation: Operation, params: dict[str, Any]) -> dict[str, str]:
    return {
        p.name: str(params[p.name]) for p in operation.params if p.location is In.HEADER and p.name in params
    }


def _body(
    operation: Operation, body: Any, upload: Upload | None
) -> tuple[bytes | FileBody | None, str | None]:
    if upload is not None:
        return upload.body, upload.content_type
    if operation.body is BodyKind.JSON:
        return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode(), "application/json"
    if operation.body is BodyKind.TEXT:
        return str(body).encode(), "text/plain; charset=utf-8"
    return None, None


def build_request(
    operation: Operation,
    params: dict[str, Any],
    body: Any,
    *,
    upload: Upload | None = None,
    sink: ResponseSink | None = None,
) -> ApiRequest:
    """The HTTP request for `operation`; `params` must have passed `tasks.validation.validate`."""
    payload, content_type = _body(operation, body, upload)
    headers = _headers(operation, params)
    if upload is not None and upload.filename:
        headers[FILENAME_HEADER] = upload.filename
    return ApiRequest(
        method=operation.method,
        path=_path(operation, params),
        query=_query(operation, params),
        headers=headers,
        body=payload,
        content_type=content_type,
        sink=sink,
    )
