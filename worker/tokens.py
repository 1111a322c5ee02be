"""Access tokens: fetched with the client-credentials grant, cached per connection, renewed early.

One `TokenProvider` lives in each worker process and serves every task of that process:

- a token is reused until `renew_margin` before it expires, so calls never carry a token about to die;
- one renewal per connection at a time (an `asyncio.Lock` with a re-check after acquiring it): other
  callers wait for it, or keep using the current token while it is still valid;
- transient token-endpoint failures (429, 5xx, network, timeouts) are retried per `worker.retry`;
- refused credentials (400/401) are not retried, and the refusal is remembered for a cool-down, so a
  wrong secret costs one token request per cool-down instead of one per message.  The cache is keyed
  by the credentials themselves, so a corrected secret is tried at once;
- with a `SharedTokenCache` (Redis), the renewal is also single-flight across the fleet: one process
  fetches, the others take its token from Redis.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import aiohttp
import structlog

from worker import constants, metrics
from worker.classify import TOKEN_STATUS, Action, classify_status, retry_after_s, token_request_outcome
from worker.connections import Connection
from worker.errors import CredentialsRefused, ErrorCode, PermanentError, TransientError
from worker.logging import secret_registry
from worker.retry import RetryPolicy, Sleep, build_retrying
from worker.token_cache import SharedToken, SharedTokenCache
from worker.transport import ApiResponse, Transport

log = structlog.get_logger(__name__)

#: Default lifetime assumed when the token endpoint does not say (the spec's smaller example).
DEFAULT_LIFETIME_S = 3600.0


@dataclass(frozen=True)
class AccessToken:
    """A bearer token and when it stops being usable (monotonic clock)."""

    value: str = field(repr=False)
    expires_at: float
    lifetime_s: float
    granted_scopes: frozenset[str] = frozenset()

    def __repr__(self) -> str:
        return f"<AccessToken expires_at={self.expires_at:.0f} scopes={sorted(self.granted_scopes)}>"


@dataclass(frozen=True)
class TokenRequest:
    """One connection's client-credentials request, ready for `Transport.send` (never shown: it holds
    the credentials)."""

    url: str
    headers: Mapping[str, str] = field(repr=False)
    form: Mapping[str, str]

    async def send(self, transport: Transport) -> ApiResponse:
        """One exchange with the token endpoint (no retry)."""
        return await transport.send("POST", self.url, headers=dict(self.headers), data=dict(self.form))


def basic_authorization(connection: Connection) -> str:
    """The ``Authorization`` header value of the token request (HTTP Basic, as aiohttp encodes it).

    Registers the client secret and its Basic encoding as secrets of the connection (scope: its name),
    so `secret_registry.scrub_scope` hides them wherever a token endpoint echoes them.
    """
    secret = connection.client_secret.get_secret_value()
    authorization = aiohttp.encode_basic_auth(connection.client_id, secret)
    secret_registry.add(secret, scope=connection.name)
    secret_registry.add(authorization.removeprefix("Basic "), scope=connection.name)
    return authorization


def token_request(connection: Connection) -> TokenRequest:
    """The client-credentials request for `connection`: id and secret as HTTP Basic, `scope` when set.

    The one place it is built: the token provider and Test Connection both send it.
    """
    authorization = basic_authorization(connection)
    form = {"grant_type": constants.GRANT_TYPE}
    if connection.scope:
        form["scope"] = connection.scope
    headers = {"Accept": "application/json", "Authorization": authorization}
    return TokenRequest(connection.access_token_url, headers, form)


def renew_margin_s(lifetime_s: float, max_margin_s: float) -> float:
    """How long before expiry to renew: a fifth of the lifetime, at most `max_margin_s`.

    A 24 h token is renewed 5 minutes early, a 60 s token 12 s early: short lifetimes are not
    renewed constantly, long ones are never used in their last minutes.
    """
    return min(max_margin_s, lifetime_s / 5)


@dataclass
class _Refusal:
    until: float
    error: CredentialsRefused


class TokenProvider:
    """The process's token cache; see the module docstring for the policy."""

    def __init__(
        self,
        transport: Transport,
        *,
        policy: RetryPolicy,
        max_margin_s: float = 300.0,
        refusal_cooldown_s: float = 60.0,
        shared: SharedTokenCache | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._transport = transport
        self._shared = shared
        self._policy = policy
        self._max_margin_s = max_margin_s
        self._refusal_cooldown_s = refusal_cooldown_s
        self._clock = clock
        self._sleep = sleep
        self._tokens: dict[str, AccessToken] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._refusals: dict[str, _Refusal] = {}
        #: Token requests sent by this process (each HTTP attempt counts).
        self.requests_sent = 0

    def _is_fresh(self, token: AccessToken | None) -> bool:
        if token is None:
            return False
        return self._clock() < token.expires_at - renew_margin_s(token.lifetime_s, self._max_margin_s)

    def _is_valid(self, token: AccessToken | None) -> bool:
        return token is not None and self._clock() < token.expires_at

    async def get(self, connection: Connection) -> AccessToken:
        """A usable token for `connection`, fetching one only when needed."""
        key = connection.token_key
        token = self._tokens.get(key)
        if self._is_fresh(token):
            return token  # type: ignore[return-value]
        lock = self._locks.setdefault(key, asyncio.Lock())
        if lock.locked() and self._is_valid(token):
            return token  # type: ignore[return-value]  # renewal under way; the current one still works
        async with lock:
            token = self._tokens.get(key)
            if self._is_fresh(token):
                return token  # type: ignore[return-value]
            self._raise_if_refused(key)
            token = (
                await self._fetch_fleet_wide(connection) if self._shared else await self._fetch(connection)
            )
            self._tokens[key] = token
            return token

    async def invalidate(self, connection: Connection, token: AccessToken) -> None:
        """Forget `token` after the API refused it, unless a newer one has replaced it already."""
        key = connection.token_key
        if self._tokens.get(key) is token:
            del self._tokens[key]
        if self._shared is not None:
            await self._shared.invalidate(key, token.value)

    async def close(self) -> None:
        """Release the shared cache's connections."""
        if self._shared is not None:
            await self._shared.close()

    # -- fleet-wide renewal (Redis) ---------------------------------------------------------------

    def _to_local(self, shared: SharedToken) -> AccessToken:
        remaining_s = shared.expires_at_unix - time.time()
        return AccessToken(
            shared.value, self._clock() + remaining_s, shared.lifetime_s, shared.granted_scopes
        )

    def _to_shared(self, token: AccessToken) -> SharedToken:
        remaining_s = token.expires_at - self._clock()
        return SharedToken(token.value, time.time() + remaining_s, token.lifetime_s, token.granted_scopes)

    def _shared_is_fresh(self, shared: SharedToken) -> bool:
        margin_s = renew_margin_s(shared.lifetime_s, self._max_margin_s)
        return time.time() < shared.expires_at_unix - margin_s

    async def _fetch_fleet_wide(self, connection: Connection) -> AccessToken:
        assert self._shared is not None
        basic_authorization(connection)  # this process may never build the request: register anyway

        async def fetch() -> SharedToken:
            return self._to_shared(await self._fetch(connection))

        shared = await self._shared.fetch_once(connection.token_key, fetch, fresh=self._shared_is_fresh)
        secret_registry.add(shared.value, scope=connection.name)  # perhaps fetched by another process
        return self._to_local(shared)

    def _raise_if_refused(self, key: str) -> None:
        refusal = self._refusals.get(key)
        if refusal is None:
            return
        if self._clock() < refusal.until:
            raise refusal.error
        del self._refusals[key]

    async def _fetch(self, connection: Connection) -> AccessToken:
        retrying = build_retrying(self._policy, event="token_request_retrying", sleep=self._sleep)
        try:
            async for attempt in retrying:
                with attempt:
                    return await self._request_token(connection)
        except CredentialsRefused as exc:
            self._refusals[connection.token_key] = _Refusal(self._clock() + self._refusal_cooldown_s, exc)
            raise
        raise AssertionError("unreachable: tenacity re-raises the last error")  # pragma: no cover

    async def _request_token(self, connection: Connection) -> AccessToken:
        request = token_request(connection)
        self.requests_sent += 1
        started = self._clock()
        try:
            response = await request.send(self._transport)
        except (TransientError, PermanentError) as exc:
            metrics.TOKEN_REQUESTS.labels(connection.name, "error").inc()
            raise exc.in_context(f"connection {connection.name!r}: token request failed") from exc
        metrics.TOKEN_REQUESTS.labels(connection.name, token_request_outcome(response.status)).inc()
        self._raise_for_status(connection, response)
        token = self._parse(connection, response, started)
        log.info(
            "token_fetched",
            connection=connection.name,
            expires_in_s=round(token.lifetime_s),
            granted_scopes=sorted(token.granted_scopes),
        )
        return token

    def _raise_for_status(self, connection: Connection, response: ApiResponse) -> None:
        resolution = classify_status(response.status, table=TOKEN_STATUS)
        if resolution.action is Action.SUCCESS:
            return
        message = f"connection {connection.name!r}: {resolution.message} (HTTP {response.status})"
        if resolution.retryable:
            raise TransientError(
                message,
                code=resolution.code,
                http_status=response.status,
                retry_after_s=retry_after_s(response.status, response.headers),
            )
        if resolution.code == ErrorCode.AUTH_FAILED:
            raise CredentialsRefused(message, http_status=response.status)
        raise PermanentError(message, code=resolution.code, http_status=response.status)

    def _parse(self, connection: Connection, response: ApiResponse, started: float) -> AccessToken:
        body = response.decoded()
        value = body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(value, str) or not value:
            raise PermanentError(
                f"connection {connection.name!r}: the token endpoint answered without an access_token",
                code=ErrorCode.TOKEN_ENDPOINT_ERROR,
                http_status=response.status,
            )
        secret_registry.add(value, scope=connection.name)
        try:
            lifetime = float(body.get("expires_in") or DEFAULT_LIFETIME_S)
        except (TypeError, ValueError):
            lifetime = DEFAULT_LIFETIME_S
        scope = body.get("scope")
        granted = frozenset(scope.split()) if isinstance(scope, str) else connection.scopes
        return AccessToken(
            value=value, expires_at=started + lifetime, lifetime_s=lifetime, granted_scopes=granted
        )
