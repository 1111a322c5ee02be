"""Download operations (``retrieveFile``, ``emailsContentGetByDocumentId``): where the bytes go.

To the outbox folder (the default): streamed into a temporary file, at most
``HYPATOS_MAX_DOWNLOAD_BYTES``, then given its final name without ever replacing a file: the name is
``<connection>--<request id>--<hash>--<filename>``, made filesystem-safe, where the hash is of the
connection and request id together, so two requests never share a name however their ids are
spelled; if the name is taken all the same (the request ran before), ``-2``, ``-3``... is added
before the extension.

With ``output: "base64"``: into memory, at most ``HYPATOS_MAX_BASE64_BYTES``.  Each such download
holds ``HYPATOS_MAX_BASE64_BYTES`` of the process's ``HYPATOS_BASE64_MEMORY_BYTES`` while it runs (its
size is not known before it arrives); when they are all taken, the next one waits for room.

Either way ``data`` describes the file: ``{path | content_base64, content_type, filename, size,
sha256}``.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import os
import re
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from tasks.byte_budget import process_budget
from tasks.catalog import Operation
from tasks.outcomes import Answer
from tasks.requests import build_request
from worker.connections import Connection
from worker.errors import ErrorCode, PermanentError, ValidationError
from worker.messages import Request
from worker.runtime import Services
from worker.settings import WorkerSettings

EXTENSIONS = {"application/pdf": ".pdf", "image/jpeg": ".jpg", "image/png": ".png", "image/tiff": ".tif"}
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
#: Longest part of an outbox name taken from the connection, the request id and the file name.
_PART_LENGTHS = {"connection": 40, "request_id": 80, "filename": 100}
#: Numbered names tried after a clash before falling back to random ones.
_NUMBERED_TRIES = 99


class DownloadTooLarge(PermanentError):
    """Raised when a download exceeds its cap (outbox or base64)."""

    code = ErrorCode.PAYLOAD_TOO_LARGE


class FileSink:
    """Streams a download into a temporary file in the outbox, hashing as it goes, up to `max_bytes`."""

    def __init__(self, folder: Path, max_bytes: int) -> None:
        self.folder = folder
        self.max_bytes = max_bytes
        self._handle: IO[bytes] | None = None
        self._sha256 = hashlib.sha256()
        self.size = 0

    def start(self) -> None:
        self.abort()
        self.folder.mkdir(parents=True, exist_ok=True)
        self._handle = tempfile.NamedTemporaryFile(dir=self.folder, prefix=".part-", delete=False)  # noqa: SIM115
        self._sha256 = hashlib.sha256()
        self.size = 0

    def write(self, chunk: bytes) -> None:
        assert self._handle is not None
        if self.size + len(chunk) > self.max_bytes:
            raise DownloadTooLarge(
                f"the file is larger than HYPATOS_MAX_DOWNLOAD_BYTES ({self.max_bytes} bytes); "
                "the partial file was removed"
            )
        self._handle.write(chunk)
        self._sha256.update(chunk)
        self.size += len(chunk)

    def finish(self, name: str) -> tuple[str, str]:
        """Give the complete file `name` (or a free variant of it); returns (name given, sha256)."""
        assert self._handle is not None
        self._handle.close()
        temporary = Path(self._handle.name)
        try:
            given = next(free for free in _candidates(name) if _claim(temporary, self.folder / free))
        finally:
            temporary.unlink(missing_ok=True)
            self._handle = None
        return given, self._sha256.hexdigest()

    def abort(self) -> None:
        """Remove a partial file, if any."""
        if self._handle is not None:
            self._handle.close()
            Path(self._handle.name).unlink(missing_ok=True)
            self._handle = None


def _candidates(name: str) -> Iterator[str]:
    """`name`, then ``stem-2.ext`` ... ``stem-99.ext``, then random variants."""
    stem, extension = os.path.splitext(name)
    yield name
    for number in range(2, _NUMBERED_TRIES + 1):
        yield f"{stem}-{number}{extension}"
    for _ in itertools.count():
        yield f"{stem}-{uuid.uuid4().hex[:12]}{extension}"


def _claim(temporary: Path, target: Path) -> bool:
    """Make `temporary`'s content appear at `target` if nothing is there; False when taken.

    A hard link is atomic and never replaces anything.  Where the filesystem has no hard links, the
    name is reserved with an exclusive create and the content moved over that empty reservation.
    """
    try:
        os.link(temporary, target)
        return True
    except FileExistsError:
        return False
    except OSError:
        pass
    try:
        os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        return False
    os.replace(temporary, target)
    return True


class MemorySink:
    """Collects a download in memory, refusing more than `cap` bytes."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.chunks: list[bytes] = []
        self.size = 0

    def start(self) -> None:
        self.chunks, self.size = [], 0

    def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.cap:
            raise DownloadTooLarge(
                f'the file is larger than HYPATOS_MAX_BASE64_BYTES ({self.cap} bytes); use output "outbox"'
            )
        self.chunks.append(chunk)

    def abort(self) -> None:
        self.chunks = []


def header_text(value: str) -> str:
    """A response header as text.  aiohttp decodes header bytes as UTF-8, keeping other bytes as lone
    surrogates; such a header was Latin-1 (what other Hypatos clients send), so it is read as that."""
    try:
        value.encode("utf-8")
        return value
    except UnicodeEncodeError:
        pass
    try:
        return value.encode("utf-8", "surrogateescape").decode("latin-1")
    except UnicodeEncodeError:
        return value.encode("utf-8", "backslashreplace").decode("utf-8")


def _safe_part(text: str, limit: int) -> str:
    return _UNSAFE_NAME.sub("_", text).strip("._")[:limit]


def _safe_filename(filename: str, limit: int) -> str:
    stem, extension = os.path.splitext(Path(filename).name)
    extension = _safe_part(extension, 16)
    stem = _safe_part(stem, limit - len(extension) - 1) or "download"
    return f"{stem}.{extension}" if extension else stem


def outbox_name(connection: str, request_id: str, filename: str) -> str:
    """``<connection>--<request id>--<hash>--<filename>``, filesystem-safe and unique per request."""
    key = f"{connection}\x00{request_id}".encode("utf-8", "surrogatepass")
    digest = hashlib.sha256(key).hexdigest()[:12]
    return "--".join(
        (
            _safe_part(connection, _PART_LENGTHS["connection"]) or "_",
            _safe_part(request_id, _PART_LENGTHS["request_id"]) or "_",
            digest,
            _safe_filename(filename, _PART_LENGTHS["filename"]),
        )
    )


def _content_type(headers: dict[str, str]) -> str:
    return header_text(headers.get("content-type", "application/octet-stream")).split(";")[0].strip()


def download_filename(resource_id: str, headers: dict[str, str]) -> str:
    """The name Hypatos gave the file (`X-Hy-Filename`), or one made from its id and type."""
    given = headers.get("x-hy-filename")
    if given:
        return header_text(given)
    return f"{resource_id}{EXTENSIONS.get(_content_type(headers), '')}"


def describe_download(
    sink: FileSink | MemorySink, headers: dict[str, str], request: Request, resource_id: str
) -> dict[str, Any]:
    """The result's ``data`` for a finished download; gives an outbox file its final name."""
    filename = download_filename(resource_id, headers)
    described: dict[str, Any] = {
        "content_type": _content_type(headers),
        "filename": filename,
        "size": sink.size,
    }
    if isinstance(sink, FileSink):
        name = outbox_name(request.connection, request.id, filename)
        described["path"], described["sha256"] = sink.finish(name)
    else:
        content = b"".join(sink.chunks)
        described["sha256"] = hashlib.sha256(content).hexdigest()
        described["content_base64"] = base64.b64encode(content).decode("ascii")
    return described


def open_sink(output: str, settings: WorkerSettings, operation: str) -> FileSink | MemorySink:
    """Where a download goes: the outbox folder, or memory for ``output: "base64"``."""
    if output == "base64":
        return MemorySink(settings.max_base64_bytes)
    if settings.outbox_dir is None:
        message = 'downloads to the outbox need HYPATOS_OUTBOX_DIR (or ask for output "base64")'
        raise ValidationError(
            f"{operation}: output: {message}", details=[{"field": "output", "message": message}]
        )
    return FileSink(settings.outbox_dir, settings.max_download_bytes)


async def _download_into(
    sink: FileSink | MemorySink,
    services: Services,
    connection: Connection,
    operation: Operation,
    params: dict[str, Any],
    request: Request,
) -> Answer:
    try:
        response = await services.client.call(connection, build_request(operation, params, None, sink=sink))
        data = describe_download(sink, dict(response.headers), request, str(params["id"]))
    except BaseException:
        sink.abort()
        raise
    return Answer(response.status, data, response.attempts)


async def download(
    services: Services, connection: Connection, operation: Operation, params: dict[str, Any], request: Request
) -> Answer:
    """Run a download operation into the outbox or memory; ``data`` describes the file."""
    settings = services.settings
    sink = open_sink(request.output, settings, operation.name)
    if isinstance(sink, FileSink):
        return await _download_into(sink, services, connection, operation, params, request)
    budget = process_budget("HYPATOS_BASE64_MEMORY_BYTES", settings.base64_memory_bytes)
    async with budget.hold(settings.max_base64_bytes):
        return await _download_into(sink, services, connection, operation, params, request)
