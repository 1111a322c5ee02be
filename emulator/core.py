"""The emulator: settings, clients, state, counters, and the request pipeline every call goes through.

Pipeline of an API call: count it, latency, maybe drop the connection, authenticate the bearer
token, charge the client's quota (429), check the operation's scope (403), maybe inject a 5xx,
run the handler, put the x-ratelimit-* headers on whatever goes out, maybe echo the credentials
into an error body, log it.
"""

from __future__ import annotations

import asyncio
import random

from aiohttp import web

from emulator import errors
from emulator.auth import Auth, Client, Token
from emulator.clock import Clock
from emulator.headers import header_text
from emulator.metrics import Counters, LoggedRequest, RequestLog
from emulator.ratelimit import RateLimiter
from emulator.routes.base import Call, Operation
from emulator.routes.token import TOKEN_OPERATION_ID, token_endpoint
from emulator.settings import Settings
from emulator.state import Store

ANONYMOUS = "-"
"""Rate-limit bucket for requests that cannot be tied to a client (bad or missing credentials)."""

_GATEWAY_PAGE = "<html><head><title>{0}</title></head><body><center><h1>{0}</h1></center></body></html>\n"


class Emulator:
    """All emulator state; touched only from the event loop thread that serves it."""

    def __init__(
        self, settings: Settings | None = None, seed: int | None = None, log_size: int = 10_000
    ) -> None:
        self.settings = settings or Settings()
        self.clock = Clock()
        self.rng = random.Random(seed)
        self.auth = Auth()
        self.limiter = RateLimiter()
        self.counters = Counters()
        self.log = RequestLog(log_size)
        self.store = Store(self.clock, self.settings, self.rng)

    # ---- pipeline ----------------------------------------------------------------------------

    async def dispatch(self, op: Operation, request: web.Request) -> web.StreamResponse:
        body = await request.read() if request.body_exists else b""
        self.counters.operation(op.operation_id)
        if op.operation_id == TOKEN_OPERATION_ID:
            response, client_id = await token_endpoint(self, request, body)
        else:
            response, client_id = await self._api_call(op, request, body)
        if response is None:
            self.counters.dropped += 1
            status = 0
            response = web.Response(status=500)
        else:
            status = response.status
            self.counters.response(status, op.operation_id)
            if status >= 400 and self.settings.echo_credentials:
                self.echo_credentials(request, response)
        self._record(op, request, body, status, client_id)
        return response

    async def _api_call(
        self, op: Operation, request: web.Request, body: bytes
    ) -> tuple[web.StreamResponse | None, str | None]:
        s = self.settings
        faulty = s.fault_operations is None or op.operation_id in s.fault_operations
        if faulty and (s.latency_ms or s.jitter_ms):
            await asyncio.sleep((s.latency_ms + self.rng.random() * s.jitter_ms) / 1000)
        if faulty and s.drop_rate and s.drop_when == "before" and self.rng.random() < s.drop_rate:
            return self.drop(request), None
        now = self.clock.now()
        token = self.auth.check_bearer(request.headers.get("Authorization"), now)
        if not isinstance(token, Token):
            return self.finish(errors.unauthorized(token).response(), None, now), None
        client = token.client
        allowed, quota_headers = self.charge(client, now)
        if not allowed:
            self.counters.rate_limited += 1
            return self.with_headers(errors.RATE_LIMITED.response(), quota_headers), client.client_id
        response = await self._authorized(op, request, body, token, faulty)
        if faulty and s.drop_rate and s.drop_when == "after" and self.rng.random() < s.drop_rate:
            return self.drop(request), client.client_id
        return self.with_headers(response, quota_headers), client.client_id

    async def _authorized(
        self, op: Operation, request: web.Request, body: bytes, token: Token, faulty: bool
    ) -> web.StreamResponse:
        if op.scope is not None and op.scope not in token.scopes:
            return errors.FORBIDDEN.response()
        if faulty and self.settings.error_rate and self.rng.random() < self.settings.error_rate:
            return self.injected_error()
        try:
            return await op.handler(Call(self, request, body, token.client))
        except errors.ApiError as exc:
            return exc.response()

    # ---- helpers shared with the token endpoint ----------------------------------------------

    def charge(self, client: Client | None, now: float) -> tuple[bool, dict[str, str]]:
        """Count a request against the client's quota (or the anonymous one)."""
        if client is None:
            limit, window = self.settings.quota()
            return self.limiter.hit(ANONYMOUS, limit, window, now)
        default_limit, default_window = self.settings.quota()
        limit = client.rate_limit if client.rate_limit is not None else default_limit
        window = client.rate_window_s if client.rate_window_s is not None else default_window
        return self.limiter.hit(client.client_id, limit, window, now)

    def finish(self, response: web.StreamResponse, client: Client | None, now: float) -> web.StreamResponse:
        """Charge the quota for a response already decided (401s) and stamp the headers."""
        allowed, quota_headers = self.charge(client, now)
        if not allowed:
            self.counters.rate_limited += 1
            response = errors.RATE_LIMITED.response()
        return self.with_headers(response, quota_headers)

    @staticmethod
    def with_headers(response: web.StreamResponse, quota_headers: dict[str, str]) -> web.StreamResponse:
        response.headers.update(quota_headers)
        return response

    def injected_error(self) -> web.StreamResponse:
        """A 5xx as the platform would send it: JSON from the API, an HTML page from the gateway."""
        self.counters.injected_errors += 1
        status = self.rng.choice(self.settings.error_statuses)
        if status in (502, 503, 504):
            title = f"{status} {errors.INJECTED_TITLES.get(status, 'Server Error')}"
            return web.Response(status=status, text=_GATEWAY_PAGE.format(title), content_type="text/html")
        return errors.injected(status).response()

    @staticmethod
    def echo_credentials(request: web.Request, response: web.StreamResponse) -> None:
        """The `echo_credentials` fault: an error body repeats the request's Authorization value."""
        authorization = request.headers.get("Authorization")
        if authorization and isinstance(response, web.Response):
            errors.echo_authorization(response, header_text(authorization))

    @staticmethod
    def drop(request: web.Request) -> None:
        """Close the connection without answering, as a failing load balancer would."""
        transport = request.transport
        if transport is not None:
            transport.abort()

    def _record(
        self, op: Operation, request: web.Request, body: bytes, status: int, client_id: str | None
    ) -> None:
        limit = self.settings.log_body_limit
        kept = body if len(body) <= limit else body[:limit]
        self.log.append(
            LoggedRequest(
                op.operation_id,
                request.method,
                request.rel_url,
                request.headers,
                kept,
                len(body),
                status,
                client_id,
                self.clock.now(),
            )
        )
