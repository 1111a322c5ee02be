"""Counters and the bounded request log that tests assert on."""

from __future__ import annotations

import base64
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from yarl import URL

from emulator.headers import header_text


class Counters:
    """Plain counters; only touched on the event loop thread."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.token_requests = 0
        self.token_requests_by_client: dict[str, int] = {}
        self.operations: dict[str, int] = {}
        self.status: dict[str, int] = {}
        self.responses: dict[str, dict[str, int]] = {}
        self.rate_limited = 0
        self.dropped = 0
        self.injected_errors = 0

    def operation(self, operation_id: str) -> None:
        self.operations[operation_id] = self.operations.get(operation_id, 0) + 1

    def token_request(self, client_id: str | None) -> None:
        self.token_requests += 1
        if client_id is not None:
            by_client = self.token_requests_by_client
            by_client[client_id] = by_client.get(client_id, 0) + 1

    def response(self, status: int, operation_id: str | None = None) -> None:
        """Count an answer sent, overall and (for known operations) per operation."""
        key = str(status)
        self.status[key] = self.status.get(key, 0) + 1
        if operation_id is not None:
            by_status = self.responses.get(operation_id)
            if by_status is None:
                by_status = self.responses[operation_id] = {}
            by_status[key] = by_status.get(key, 0) + 1

    def snapshot(self) -> dict[str, Any]:
        return {
            "token_requests": self.token_requests,
            "token_requests_by_client": dict(self.token_requests_by_client),
            "operations": dict(self.operations),
            "status": dict(self.status),
            "responses": {op: dict(by_status) for op, by_status in self.responses.items()},
            "rate_limited": self.rate_limited,
            "dropped": self.dropped,
            "injected_errors": self.injected_errors,
        }


_TEXT_TYPES = ("text/", "application/json", "application/x-www-form-urlencoded")


def render_body(kept: bytes, content_type: str, size: int) -> dict[str, Any]:
    """Text bodies as text and binary ones as base64; `kept` is the first part of `size` bytes."""
    body = kept
    entry: dict[str, Any] = {"body_truncated": len(kept) < size, "body_size": size}
    if content_type.startswith(_TEXT_TYPES) or not body:
        try:
            entry["body"] = body.decode("utf-8")
            entry["body_base64"] = False
            return entry
        except UnicodeDecodeError:
            pass
    entry["body"] = base64.b64encode(body).decode("ascii")
    entry["body_base64"] = True
    return entry


@dataclass(slots=True)
class LoggedRequest:
    """What the log keeps of one call: references only, turned into JSON data when read.

    Building the JSON shape on every request cost more than the rest of the pipeline, and base64 of
    uploads tripled their memory; the body kept here is the request's own bytes object (shared
    with the stored file for a new upload), cut to the body limit.
    """

    operation: str
    method: str
    url: URL
    headers: Mapping[str, str]
    body: bytes
    body_size: int
    status: int
    client_id: str | None
    time: float

    def render(self) -> dict[str, Any]:
        query: dict[str, list[str]] = {}
        for name, value in self.url.query.items():
            query.setdefault(name, []).append(value)
        headers = {name.lower(): header_text(value) for name, value in self.headers.items()}
        entry: dict[str, Any] = {
            "operation": self.operation,
            "method": self.method,
            "path": self.url.path,
            "query": query,
            "headers": headers,
            "status": self.status,
            "client_id": self.client_id,
            "time": self.time,
        }
        if self.body_size:
            entry.update(render_body(self.body, headers.get("content-type", ""), self.body_size))
        else:
            entry.update(body="", body_base64=False, body_truncated=False, body_size=0)
        return entry


class RequestLog:
    """Ring buffer of API requests (admin calls excluded), oldest dropped first."""

    def __init__(self, size: int = 10_000) -> None:
        self._entries: deque[LoggedRequest] = deque(maxlen=size)

    def append(self, entry: LoggedRequest) -> None:
        self._entries.append(entry)

    def entries(self, clear: bool = False) -> list[dict[str, Any]]:
        entries = [entry.render() for entry in self._entries]
        if clear:
            self._entries.clear()
        return entries

    def clear(self) -> None:
        self._entries.clear()
