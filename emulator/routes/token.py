"""POST /auth/token: OAuth 2.0 client credentials with HTTP Basic client authentication."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING
from urllib.parse import parse_qs

from aiohttp import web

from emulator.auth import InvalidScope
from emulator.errors import RATE_LIMITED, ApiError, json_response

if TYPE_CHECKING:
    from emulator.core import Emulator

TOKEN_OPERATION_ID = "Authorization_requestAccessToken"
INVALID_CLIENT = ApiError(401, "Invalid client credentials", "The provided client credentials are not valid")
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def _form(request: web.Request, body: bytes) -> dict[str, str]:
    media = request.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
    if media != "application/x-www-form-urlencoded":
        return {}
    try:
        parsed = parse_qs(body.decode("utf-8"), keep_blank_values=True)
    except UnicodeDecodeError:
        return {}
    return {name: values[0] for name, values in parsed.items()}


async def token_endpoint(
    emu: Emulator, request: web.Request, body: bytes
) -> tuple[web.StreamResponse, str | None]:
    """Issue a token; every answer (400/401/429 included) carries the client's quota headers."""
    s = emu.settings
    if s.token_latency_ms:
        await asyncio.sleep(s.token_latency_ms / 1000)
    credentials = emu.auth.basic_client_id(request.headers.get("Authorization"))
    claimed_id = credentials[0] if credentials else None
    emu.counters.token_request(claimed_id)
    now = emu.clock.now()
    known = emu.auth.clients.get(claimed_id) if claimed_id is not None else None
    allowed, quota_headers = emu.charge(known, now)
    if not allowed:
        emu.counters.rate_limited += 1
        return emu.with_headers(RATE_LIMITED.response(), quota_headers), claimed_id
    response = _issue(emu, request, body, credentials, now)
    return emu.with_headers(response, quota_headers), claimed_id


def _issue(
    emu: Emulator, request: web.Request, body: bytes, credentials: tuple[str, str] | None, now: float
) -> web.StreamResponse:
    if emu.settings.token_error_rate and emu.rng.random() < emu.settings.token_error_rate:
        return emu.injected_error()
    form = _form(request, body)
    grant_type = form.get("grant_type")
    if grant_type != "client_credentials":
        detail = "grant_type is missing" if not grant_type else f"Unsupported grant_type {grant_type!r}"
        return ApiError(400, "Unsupported grant type", detail).response()
    client = emu.auth.authenticate(credentials)
    if client is None:
        return INVALID_CLIENT.response()
    try:
        token = emu.auth.issue(client, form.get("scope"), emu.settings.token_lifetime_s, now)
    except InvalidScope:
        return ApiError(
            400, "Invalid scope", "None of the requested scopes is granted to this client"
        ).response()
    response = json_response(
        {
            "access_token": token.value,
            "token_type": "Bearer",
            "expires_in": max(1, int(emu.settings.token_lifetime_s)),
            "scope": " ".join(sorted(token.scopes)),
        }
    )
    response.headers.update(_NO_STORE)
    return response
