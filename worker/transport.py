"""The only module that touches aiohttp's request API; its exceptions become ours here.

`Transport.send` makes exactly one HTTP exchange and returns an `ApiResponse` whatever the status:
deciding what a status means is `worker.classify`'s job, retrying is `worker.client`'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp
import aiohttp.payload
import orjson
from aiohttp.abc import AbstractStreamWriter
from yarl import URL

from worker.classify import classify_exception
from worker.errors import PermanentError, TransientError

#: Bytes read from a streamed response at a time.
CHUNK_BYTES = 256 * 1024


class FileBody:
    """A request body streamed from one open file (never held in memory, never reopened by name).

    The file was opened once, when the request was checked; every attempt sends the same `size`
    bytes from its start, read with positional reads, so a retry cannot pick up another file put in
    its place meanwhile.  The owner closes it (`close`, or use it as a context manager) when the
    request ends.
    """

    def __init__(self, fd: int, size: int, name: str) -> None:
        self._fd: int | None = fd
        #: Bytes sent on every attempt (the file's size when it was opened).
        self.size = size
        #: The file's name, for logs and as the default upload file name.
        self.name = name

    def read_at(self, offset: int, length: int) -> bytes:
        """Up to `length` bytes from `offset`; the file position is not used, so attempts never mix."""
        if self._fd is None:
            raise ValueError(f"the upload file {self.name!r} is closed")
        return os.pread(self._fd, length, offset)

    @property
    def closed(self) -> bool:
        return self._fd is None

    def close(self) -> None:
        """Close the file; safe to call twice."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    def __enter__(self) -> FileBody:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"FileBody(name={self.name!r}, size={self.size}, {state})"


class _FileBodyPayload(aiohttp.payload.Payload):
    """One attempt's view of a `FileBody`: its `size` bytes from offset 0, read off the event loop."""

    _autoclose = True  # the FileBody's owner closes the file, not aiohttp

    def __init__(self, body: FileBody) -> None:
        super().__init__(body, content_type=None)
        self._body = body
        self._size = body.size

    async def write(self, writer: AbstractStreamWriter) -> None:
        await self.write_with_length(writer, None)

    async def write_with_length(self, writer: AbstractStreamWriter, content_length: int | None) -> None:
        loop = asyncio.get_running_loop()
        end = self._body.size if content_length is None else min(self._body.size, content_length)
        offset = 0
        while offset < end:
            chunk = await loop.run_in_executor(
                None, self._body.read_at, offset, min(CHUNK_BYTES, end - offset)
            )
            if not chunk:
                raise OSError(f"the upload file {self._body.name!r} shrank while it was being sent")
            await writer.write(chunk)
            offset += len(chunk)

    def decode(self, encoding: str = "utf-8", errors: str = "strict") -> str:
        raise TypeError("a file body is binary")


class ResponseSink(Protocol):
    """Receives a successful response body in chunks instead of memory (downloads)."""

    def start(self) -> None:
        """A new attempt begins: forget anything written before."""

    def write(self, chunk: bytes) -> None:
        """Take the next chunk."""


@dataclass(frozen=True)
class ApiRequest:
    """One call to the Hypatos API, independent of any connection or token."""

    method: str
    #: Path below the endpoint URL, already expanded and percent-encoded, e.g. ``/documents/abc``.
    path: str
    query: tuple[tuple[str, str], ...] = ()
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes | FileBody | None = None
    content_type: str | None = None
    #: Where a successful response body goes; None keeps it in `ApiResponse.body`.
    sink: ResponseSink | None = field(default=None, compare=False)


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
            try:  # orjson: fast, and bounded nesting (a hostile body cannot exhaust the stack)
                return orjson.loads(self.body)
            except orjson.JSONDecodeError:
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
        sink: ResponseSink | None = None,
    ) -> ApiResponse:
        """One exchange; redirects are not followed, so credentials never travel to another host.

        A `FileBody` is streamed from its open file, from the start on every call; with a `sink`, a
        successful response body is streamed to it.
        """
        with map_aiohttp_errors():
            if isinstance(data, FileBody):
                data = _FileBodyPayload(data)
            async with self._session.request(
                method,
                URL(url, encoded=True),
                headers=headers,
                params=params or None,
                data=data,
                allow_redirects=False,
            ) as response:
                headers_out = {name.lower(): value for name, value in response.headers.items()}
                if sink is not None and 200 <= response.status < 300:
                    sink.start()
                    async for chunk in response.content.iter_chunked(CHUNK_BYTES):
                        sink.write(chunk)
                    return ApiResponse(status=response.status, headers=headers_out, body=b"")
                return ApiResponse(status=response.status, headers=headers_out, body=await response.read())
