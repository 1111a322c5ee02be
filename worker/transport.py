"""The only module that touches aiohttp's request API; its exceptions become ours here.

`Transport.send` makes exactly one HTTP exchange and returns an `ApiResponse` whatever the status:
deciding what a status means is `worker.classify`'s job, retrying is `worker.client`'s.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from yarl import URL

from worker.classify import classify_exception
from worker.errors import PermanentError, TransientError


@dataclass(frozen=True)
class ApiRequest:
    """One call to the Hypatos API, independent of any connection or token."""

    method: str
    #: Path below the endpoint URL, already expanded and percent-encoded, e.g. ``/documents/abc``.
    path: str
    query: tuple[tuple[str, str], ...] = ()
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes | None = None
    content_type: str | None = None


@dataclass(frozen=True)
class ApiResponse:
    """A response read to the end; header names are lower-cased."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    #: HTTP exchanges it took to get this response (retries and token refreshes included).
    attempts: int = 1

    @property
    def content_type(self) -> str:
        """The media type without parameters, e.g. ``application/json``."""
        return self.headers.get("content-type", "").split(";")[0].strip().lower()

    def decoded(self) -> Any:
        """The body as JSON when it is JSON, as text when it is text, None when empty."""
        if not self.body:
            return None
        if self.content_type.endswith("json"):
            try:
                return json.loads(self.body)
            except ValueError:
                pass
        return self.body.decode("utf-8", errors="replace")


@contextlib.contextmanager
def map_aiohttp_errors() -> Iterator[None]:
    """Re-raise aiohttp and timeout errors as `TransientError` or `PermanentError`, ``from`` the cause."""
    try:
        yield
    except (aiohttp.ClientError, TimeoutError) as exc:
        resolution = classify_exception(exc)
        error_type = TransientError if resolution.retryable else PermanentError
        raise error_type(f"{resolution.message} ({type(exc).__name__})", code=resolution.code) from exc


class Transport:
    """Sends requests over the process's one `aiohttp.ClientSession`."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self._session = session

    async def send(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        params: tuple[tuple[str, str], ...] = (),
        data: Any = None,
    ) -> ApiResponse:
        """One exchange; redirects are not followed, so credentials never travel to another host."""
        with map_aiohttp_errors():
            async with self._session.request(
                method,
                URL(url, encoded=True),
                headers=headers,
                params=params or None,
                data=data,
                allow_redirects=False,
            ) as response:
                body = await response.read()
                headers_out = {name.lower(): value for name, value in response.headers.items()}
                return ApiResponse(status=response.status, headers=headers_out, body=body)
