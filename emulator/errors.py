"""Error bodies and JSON responses in the shapes the vendor spec shows."""

from __future__ import annotations

import html
import json
from typing import Any

from aiohttp import web

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_dumps_ascii = json.JSONEncoder(separators=(",", ":")).encode


def json_response(data: Any, status: int = 200) -> web.Response:
    """Build a JSON response without aiohttp's slower helper defaults."""
    return web.Response(body=json_bytes(data), status=status, content_type="application/json")


def dumps(data: Any) -> str:
    return _dumps(data)


def json_bytes(data: Any) -> bytes:
    """UTF-8 JSON of `data`.

    Text with a lone surrogate (a client may send the JSON escape `\\udcfc`) has no UTF-8 form; such
    data is written with `\\uXXXX` escapes instead, so the stored value can always be read back.
    """
    text = _dumps(data)
    try:
        return text.encode()
    except UnicodeEncodeError:
        return _dumps_ascii(data).encode()


class ApiError(Exception):
    """Raised by handlers; turned into the error response the spec shows for that case."""

    def __init__(self, status: int, title: str, detail: str | None = None, body: Any = None) -> None:
        super().__init__(f"{status} {title}")
        self.status = status
        self.title = title
        self.detail = detail
        self.body = body

    def payload(self) -> Any:
        if self.body is not None:
            return self.body
        return {"title": self.title, "detail": self.detail or self.title, "status": self.status}

    def response(self) -> web.Response:
        return json_response(self.payload(), self.status)


def not_found(what: str) -> ApiError:
    """404 for files, documents, projects, companies (Error schema)."""
    return ApiError(404, f"{what} does not exist", f"The {what.lower()} with given identifier does not exist")


def bad_request(title: str, detail: str | None = None) -> ApiError:
    return ApiError(400, title, detail)


def enrichment_not_found() -> ApiError:
    """Enrichment 404 uses the Problem shape without detail."""
    return ApiError(404, "Not found", body={"title": "Not found", "status": 404})


def validation_error(errors: list[dict[str, Any]]) -> ApiError:
    """Enrichment 422 in FastAPI's HTTPValidationError shape."""
    return ApiError(422, "Validation error", body={"detail": errors})


UNAUTHORIZED_TITLE = "Unauthorized"
FORBIDDEN = ApiError(403, "Forbidden", "Not enough privileges to perform an action on a resource")
RATE_LIMITED = ApiError(429, "Too Many Requests", "Rate limit exceeded, retry after the reset")
INJECTED_TITLES = {
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


def unauthorized(detail: str) -> ApiError:
    return ApiError(401, UNAUTHORIZED_TITLE, detail)


def injected(status: int) -> ApiError:
    title = INJECTED_TITLES.get(status, "Server Error")
    return ApiError(status, title, "Injected fault (emulator)")


def echo_authorization(response: web.Response, authorization: str) -> None:
    """Fault `echo_credentials`: write the caller's Authorization value into an error body.

    A careless server does this; the worker's tests use it to prove no secret reaches a result. JSON
    bodies get it in `detail` (appended to a text detail, added as one more item to a validation
    error list, or set where there was none); the gateway's HTML pages get it as a paragraph.
    """
    echoed = f"Authorization: {authorization}"
    if response.content_type == "text/html":
        page = response.text or ""
        response.text = page.replace("</body>", f"<p>{html.escape(echoed)}</p></body>", 1)
        return
    try:
        payload = json.loads(response.body)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return
    if not isinstance(payload, dict):
        return
    detail = payload.get("detail")
    if isinstance(detail, list):
        payload["detail"] = [*detail, {"loc": ["header", "Authorization"], "msg": echoed, "type": "echo"}]
    elif isinstance(detail, str) and detail:
        payload["detail"] = f"{detail} ({echoed})"
    else:
        payload["detail"] = echoed
    response.body = json_bytes(payload)
