"""Counters and the bounded request log that tests assert on."""

from __future__ import annotations

import base64
from collections import deque
from typing import Any


class Counters:
    """Plain counters; only touched on the event loop thread."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.token_requests = 0
        self.token_requests_by_client: dict[str, int] = {}
        self.operations: dict[str, int] = {}
        self.status: dict[str, int] = {}
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

    def response(self, status: int) -> None:
        key = str(status)
        self.status[key] = self.status.get(key, 0) + 1

    def snapshot(self) -> dict[str, Any]:
        return {
            "token_requests": self.token_requests,
            "token_requests_by_client": dict(self.token_requests_by_client),
            "operations": dict(self.operations),
            "status": dict(self.status),
            "rate_limited": self.rate_limited,
            "dropped": self.dropped,
            "injected_errors": self.injected_errors,
        }


_TEXT_TYPES = ("text/", "application/json", "application/x-www-form-urlencoded")


def render_body(body: bytes, content_type: str, limit: int) -> dict[str, Any]:
    """Keep text bodies as text and binary ones as base64, cut at `limit` bytes."""
    size = len(body)
    truncated = size > limit
    if truncated:
        body = body[:limit]
    entry: dict[str, Any] = {"body_truncated": truncated, "body_size": size}
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


class RequestLog:
    """Ring buffer of API requests (admin calls excluded), oldest dropped first."""

    def __init__(self, size: int = 10_000) -> None:
        self._entries: deque[dict[str, Any]] = deque(maxlen=size)

    def append(self, entry: dict[str, Any]) -> None:
        self._entries.append(entry)

    def entries(self, clear: bool = False) -> list[dict[str, Any]]:
        entries = list(self._entries)
        if clear:
            self._entries.clear()
        return entries

    def clear(self) -> None:
        self._entries.clear()
