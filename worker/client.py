"""Calls the Hypatos API for a connection: attaches the token, renews it on 401, retries what may pass.

The flow for one `HypatosClient.call`:

1. take a token from the `TokenProvider`, a slot from the connection's quota (`worker.quota`), and
   send the request once; the quota learns from the answer's rate-limit headers;
2. on 401, drop that token, take a fresh one and send once more (a second 401 is `auth_failed`);
3. classify the answer (`worker.classify`): success returns, 429/5xx/network errors raise
   `TransientError` and go round the tenacity loop (`worker.retry`), anything else raises
   `PermanentError` carrying Hypatos' error body.  A `QuotaWait` is not retried here: it goes to
   the broker at once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, replace

import structlog

from worker import metrics
from worker.classify import MAY_HAVE_BEEN_PROCESSED, Action, Resolution, classify_status, retry_after_s
from worker.connections import Connection
from worker.errors import HypatosError, PermanentError, TransientError
from worker.quota import Quota, QuotaWait
from worker.retry import RetryPolicy, Sleep, build_retrying, is_transient
from worker.tokens import AccessToken, TokenProvider
from worker.transport import ApiRequest, ApiResponse, Transport

log = structlog.get_logger(__name__)

USER_AGENT = "hypatos-worker/0.1"

#: API calls made so far by the request running in this context (each request runs in its own
#: asyncio task, hence its own context).  A request that has made one (paging, a retry) is in
#: progress: it may wait for its next quota slot even when others of its connection already wait.
_calls_in_request: ContextVar[int] = ContextVar("hypatos_calls_in_request", default=0)


@dataclass
class _Counter:
    sent: int = 0


def _describe(response: ApiResponse) -> str:
    """Hypatos' own words from an error body (``title``/``detail`` or 422 ``detail`` list)."""
    body = response.decoded()
    if isinstance(body, dict):
        parts = [str(body[key]) for key in ("title", "detail") if isinstance(body.get(key), str)]
        if isinstance(body.get("detail"), list):
            parts.append("; ".join(str(item.get("msg", item)) for item in body["detail"] if item))
        return ": ".join(parts)
    return body[:200] if isinstance(body, str) else ""


def _retried_here(error: BaseException) -> bool:
    """Transient failures are retried in the call, except quota waits: those go to the broker."""
    return is_transient(error) and not isinstance(error, QuotaWait)


def _retried_here_unprocessed(error: BaseException) -> bool:
    return _retried_here(error) and getattr(error, "code", "") not in MAY_HAVE_BEEN_PROCESSED


class HypatosClient:
    """The process's client for every connection; holds no per-request state."""

    def __init__(
        self,
        transport: Transport,
        tokens: TokenProvider,
        *,
        policy: RetryPolicy,
        quota: Quota | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._transport = transport
        self._tokens = tokens
        self._policy = policy
        self._quota = quota
        self._sleep = sleep

    async def call(
        self, connection: Connection, request: ApiRequest, *, replay_safe: bool = True
    ) -> ApiResponse:
        """Send `request` on `connection`; return the successful response or raise a `HypatosError`.

        With `replay_safe` false (calls that create something), a timeout or a connection lost after
        sending is not retried: the call may have been processed, and the caller must find out first.
        Most calls succeed at once, so the first attempt runs outside the retry loop; only a failure
        worth retrying builds it (`worker.retry`), starting from that failure.
        """
        counter = _Counter()
        retry_on = _retried_here if replay_safe else _retried_here_unprocessed
        try:
            try:
                return await self._attempt(connection, request, counter)
            except HypatosError as first:
                if not retry_on(first):
                    raise
                return await self._retry(connection, request, counter, first, retry_on)
        except HypatosError as exc:
            exc.attempts = counter.sent
            raise

    async def _attempt(self, connection: Connection, request: ApiRequest, counter: _Counter) -> ApiResponse:
        response = await self._send_authorized(connection, request, counter)
        self._raise_for_status(response)
        return replace(response, attempts=counter.sent)

    async def _retry(
        self,
        connection: Connection,
        request: ApiRequest,
        counter: _Counter,
        first: HypatosError,
        retry_on: Callable[[BaseException], bool],
    ) -> ApiResponse:
        """The tenacity loop, whose first attempt is the one that already failed with `first`."""
        retrying = build_retrying(
            self._policy, event="hypatos_call_retrying", sleep=self._sleep, retry_on=retry_on
        )
        failed: HypatosError | None = first
        async for attempt in retrying:
            with attempt:
                if failed is not None:
                    error, failed = failed, None
                    raise error
                return await self._attempt(connection, request, counter)
        raise AssertionError("unreachable: tenacity re-raises the last error")  # pragma: no cover

    async def _send_authorized(
        self, connection: Connection, request: ApiRequest, counter: _Counter
    ) -> ApiResponse:
        token = await self._tokens.get(connection)
        response = await self._send_once(connection, request, token, counter)
        if classify_status(response.status).action is Action.REFRESH_TOKEN_THEN_RETRY:
            log.info("access_token_refused_renewing", connection=connection.name)
            await self._tokens.invalidate(connection, token)
            token = await self._tokens.get(connection)
            response = await self._send_once(connection, request, token, counter)
        return response

    async def _send_once(
        self, connection: Connection, request: ApiRequest, token: AccessToken, counter: _Counter
    ) -> ApiResponse:
        headers = {"Accept": "application/json", "User-Agent": USER_AGENT, **request.headers}
        headers["Authorization"] = f"Bearer {token.value}"
        if request.content_type:
            headers["Content-Type"] = request.content_type
        if self._quota is not None:
            await self._quota.acquire(connection, in_progress=_calls_in_request.get() > 0)
        _calls_in_request.set(_calls_in_request.get() + 1)
        counter.sent += 1
        started = time.perf_counter()
        try:
            response = await self._transport.send(
                request.method,
                connection.endpoint_url + request.path,
                headers=headers,
                params=request.query,
                data=request.body,
                sink=request.sink,
            )
        except (TransientError, PermanentError) as exc:
            metrics.API_RESPONSES.labels(connection.name, metrics.status_class(None)).inc()
            log.debug("hypatos_call_error", method=request.method, path=request.path, error_code=exc.code)
            raise
        metrics.API_RESPONSES.labels(connection.name, metrics.status_class(response.status)).inc()
        if self._quota is not None:
            await self._quota.observe(connection, response.status, response.headers)
        log.debug(
            "hypatos_call",
            method=request.method,
            path=request.path,
            http_status=response.status,
            duration_ms=round((time.perf_counter() - started) * 1000, 1),
            ratelimit_remaining=response.headers.get("x-ratelimit-remaining"),
        )
        return response

    @staticmethod
    def _raise_for_status(response: ApiResponse) -> None:
        resolution: Resolution = classify_status(response.status)
        if resolution.action is Action.SUCCESS:
            return
        detail = _describe(response)
        message = f"{resolution.message} (HTTP {response.status}{': ' + detail if detail else ''})"
        common = {"code": resolution.code, "http_status": response.status, "data": response.decoded()}
        if resolution.retryable:
            raise TransientError(
                message, retry_after_s=retry_after_s(response.status, response.headers), **common
            )
        raise PermanentError(message, **common)
