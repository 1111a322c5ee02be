"""What every route handler gets, and the operation table entry type."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web

from emulator.auth import Client
from emulator.errors import ApiError, bad_request

if TYPE_CHECKING:
    from emulator.core import Emulator


@dataclass(slots=True)
class Call:
    """One API call after authentication: the request, its body and the calling client."""

    emu: Emulator
    request: web.Request
    body: bytes
    client: Client

    @property
    def actor(self) -> str:
        return self.client.user_id

    def media_type(self) -> str:
        return self.request.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()

    def json(self, invalid: Callable[[str], ApiError] | None = None) -> Any:
        """Parse a JSON body; the API answers 400 for a missing or undecodable payload."""
        if self.media_type() != "application/json":
            raise (invalid or _payload_error)("Content-Type must be application/json")
        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise (invalid or _payload_error)(f"Payload data couldn't be deserialised: {exc}") from None

    def text(self) -> str:
        """Decode a text/plain body (external id, title)."""
        if self.media_type() != "text/plain":
            raise bad_request("Unsupported content type", "The payload must be sent as text/plain")
        try:
            return self.body.decode(self.request.charset or "utf-8")
        except (UnicodeDecodeError, LookupError):
            raise bad_request("Payload data is invalid", "The payload is not valid text") from None


def _payload_error(detail: str) -> ApiError:
    return bad_request("Payload data is invalid", detail)


Handler = Callable[[Call], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class Operation:
    """One vendor operation: how it is routed, which scope it needs and who answers it."""

    operation_id: str
    method: str
    path: str
    scope: str | None
    handler: Handler
