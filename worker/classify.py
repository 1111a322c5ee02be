"""What an answer from Hypatos means for the caller: the one place status codes are interpreted.

`classify_status` and `classify_exception` are pure; the client carries out what they decide.  The
tables are data, so a new status or exception is one row (and one test row).  What Test Connection
reports for the same answers (meaning and fix, for people) is in the tables of `worker.refusals`.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Mapping
from dataclasses import dataclass

import aiohttp

from worker.errors import ErrorCode


class Action(enum.Enum):
    """What the client does next."""

    SUCCESS = "success"
    RETRY = "retry"
    RATE_LIMITED = "rate_limited"
    REFRESH_TOKEN_THEN_RETRY = "refresh_token_then_retry"
    FAIL = "fail"


@dataclass(frozen=True)
class Resolution:
    """The decision for one answer, with the result's error code and an operator-facing message."""

    action: Action
    #: The result's error code; None for an answer that is not an error.
    code: ErrorCode | None = None
    message: str = ""

    @property
    def retryable(self) -> bool:
        """Whether the same request may succeed later."""
        return self.action in (Action.RETRY, Action.RATE_LIMITED)


SUCCESS = Resolution(Action.SUCCESS)

#: API answers (not the token endpoint) by status code.
API_STATUS: Mapping[int, Resolution] = {
    400: Resolution(Action.FAIL, ErrorCode.BAD_REQUEST, "Hypatos rejected the request as malformed"),
    401: Resolution(
        Action.REFRESH_TOKEN_THEN_RETRY,
        ErrorCode.AUTH_FAILED,
        "Hypatos refused the access token, even a fresh one",
    ),
    403: Resolution(
        Action.FAIL,
        ErrorCode.FORBIDDEN,
        "the connection's API client lacks the scope this operation needs; grant it or fix `scope`",
    ),
    404: Resolution(Action.FAIL, ErrorCode.NOT_FOUND, "Hypatos has no such resource"),
    409: Resolution(Action.FAIL, ErrorCode.CONFLICT, "Hypatos reported a conflict with the resource's state"),
    413: Resolution(Action.FAIL, ErrorCode.PAYLOAD_TOO_LARGE, "Hypatos refused the body as too large"),
    415: Resolution(
        Action.FAIL, ErrorCode.UNSUPPORTED_MEDIA_TYPE, "Hypatos does not accept this content type"
    ),
    422: Resolution(Action.FAIL, ErrorCode.UNPROCESSABLE_ENTITY, "Hypatos rejected the payload's content"),
    429: Resolution(Action.RATE_LIMITED, ErrorCode.RATE_LIMITED, "the API client's rate limit is spent"),
}

#: Token endpoint answers that differ from `API_STATUS`: refused credentials are final.
TOKEN_STATUS: Mapping[int, Resolution] = {
    400: Resolution(
        Action.FAIL,
        ErrorCode.AUTH_FAILED,
        "the token endpoint refused the request: check client_id, client_secret and scope",
    ),
    401: Resolution(
        Action.FAIL,
        ErrorCode.AUTH_FAILED,
        "the token endpoint refused the client credentials: check client_id and client_secret",
    ),
    403: Resolution(Action.FAIL, ErrorCode.AUTH_FAILED, "the token endpoint refused the requested scope"),
    404: Resolution(
        Action.FAIL,
        ErrorCode.TOKEN_ENDPOINT_NOT_FOUND,
        "no token endpoint at access_token_url: check the URL",
    ),
}

#: The ``outcome`` label of a token request in the metrics, by status; any other status is "error".
TOKEN_REQUEST_OUTCOMES: Mapping[int, str] = {200: "ok", 400: "refused", 401: "refused"}


def token_request_outcome(status: int) -> str:
    """The metrics outcome of a token request answered with `status`."""
    return TOKEN_REQUEST_OUTCOMES.get(status, "error")


_SERVER_ERROR = Resolution(Action.RETRY, ErrorCode.SERVER_ERROR, "Hypatos answered with a server error")
_OTHER_CLIENT_ERROR = Resolution(Action.FAIL, ErrorCode.REJECTED, "Hypatos rejected the request")
_UNEXPECTED = Resolution(
    Action.FAIL, ErrorCode.UNEXPECTED_STATUS, "Hypatos answered with an unexpected status"
)


def classify_status(status: int, *, table: Mapping[int, Resolution] = API_STATUS) -> Resolution:
    """Decide what a response status means; the token endpoint passes `table=TOKEN_STATUS`."""
    if 200 <= status < 300:
        return SUCCESS
    if status in table:
        return table[status]
    if status in API_STATUS:
        return API_STATUS[status]
    if status >= 500:
        return _SERVER_ERROR
    if 400 <= status < 500:
        return _OTHER_CLIENT_ERROR
    return _UNEXPECTED


#: Exceptions raised on the way to Hypatos, most specific first.
EXCEPTIONS: tuple[tuple[type[BaseException], Resolution], ...] = (
    (
        aiohttp.ClientSSLError,
        Resolution(
            Action.FAIL, ErrorCode.TLS_ERROR, "TLS handshake with Hypatos failed: check the URL and CA store"
        ),
    ),
    (
        aiohttp.ConnectionTimeoutError,
        Resolution(
            Action.RETRY, ErrorCode.NETWORK_ERROR, "could not connect to Hypatos in time: check the network"
        ),
    ),
    (
        aiohttp.ClientConnectorError,
        Resolution(
            Action.RETRY, ErrorCode.NETWORK_ERROR, "could not connect to Hypatos: check the URL and network"
        ),
    ),
    (asyncio.TimeoutError, Resolution(Action.RETRY, ErrorCode.TIMEOUT, "Hypatos did not answer in time")),
    (
        aiohttp.ClientError,
        Resolution(Action.RETRY, ErrorCode.CONNECTION_LOST, "the connection to Hypatos was lost mid-request"),
    ),
)

#: Error codes after which the request may have been processed although no answer arrived.  A call
#: that creates something is not repeated blindly after these (see `tasks.creation`).
MAY_HAVE_BEEN_PROCESSED = frozenset({ErrorCode.TIMEOUT, ErrorCode.CONNECTION_LOST})


def classify_exception(error: BaseException) -> Resolution:
    """Decide what an exception raised while calling Hypatos means."""
    for error_type, resolution in EXCEPTIONS:
        if isinstance(error, error_type):
            return resolution
    raise error


def retry_after_s(status: int, headers: Mapping[str, str]) -> float | None:
    """Seconds the server asked us to wait, from ``Retry-After`` or, on 429, ``x-ratelimit-reset``."""
    for name in ("retry-after", "x-ratelimit-reset"):
        if name == "x-ratelimit-reset" and status != 429:
            continue
        raw = headers.get(name)
        if raw is None:
            continue
        try:
            return max(float(raw), 0.0)
        except ValueError:
            continue
    return None
