"""Files in and out: where upload bytes come from, where download bytes go.

Uploads (``uploadFile``) take ``file.path`` inside the operator's inbox folder, streamed from disk
(never read into memory), or ``file.base64`` up to ``HYPATOS_MAX_BASE64_BYTES``.  The content type is
the request's, or detected from the first bytes.  The file name travels in ``X-Hy-Filename``; a name
outside Latin-1 is percent-encoded (UTF-8), control characters are dropped.

Downloads (``retrieveFile``, ``emailsContentGetByDocumentId``) stream into the outbox folder, to a
temporary file renamed into place when complete, or, with ``output: "base64"``, into memory up to the
cap.  Either way ``data`` describes the file: ``{path | content_base64, content_type, filename, size,
sha256}``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

from worker.errors import PermanentError, ValidationError
from worker.messages import FileInput
from worker.settings import WorkerSettings
from worker.transport import FileBody

#: What Hypatos accepts, with the leading bytes that identify each type.
SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"%PDF-", "application/pdf"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"II*\x00", "image/tiff"),
    (b"MM\x00*", "image/tiff"),
)
SUPPORTED_TYPES = frozenset(media for _, media in SIGNATURES)
EXTENSIONS = {"application/pdf": ".pdf", "image/jpeg": ".jpg", "image/png": ".png", "image/tiff": ".tif"}
FILENAME_HEADER = "X-Hy-Filename"
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def _invalid(field: str, message: str) -> ValidationError:
    return ValidationError(f"uploadFile: {field}: {message}", details=[{"field": field, "message": message}])


def sniff(head: bytes) -> str | None:
    """The supported media type the bytes start with, if any."""
    return next((media for magic, media in SIGNATURES if head.startswith(magic)), None)


def header_filename(name: str) -> str:
    """`name` as a safe header value: control characters dropped, non-Latin-1 percent-encoded."""
    cleaned = "".join(ch for ch in name if ch.isprintable())
    try:
        cleaned.encode("latin-1")
        return cleaned
    except UnicodeEncodeError:
        return quote(cleaned, safe=" ._-()")


@dataclass(frozen=True)
class Upload:
    """An upload's body and headers, ready for the `ApiRequest`."""

    body: bytes | FileBody
    content_type: str
    filename: str | None


def _from_inbox(file: FileInput, settings: WorkerSettings) -> tuple[FileBody, bytes]:
    if settings.inbox_dir is None:
        raise _invalid("file.path", "uploads by path need an inbox folder: set HYPATOS_INBOX_DIR")
    inbox = settings.inbox_dir.resolve()
    path = (inbox / str(file.path)).resolve()
    if not path.is_relative_to(inbox):
        raise _invalid("file.path", "must stay inside the inbox folder")
    if not path.is_file():
        raise _invalid("file.path", "no such file in the inbox folder")
    size = path.stat().st_size
    if size == 0:
        raise _invalid("file.path", "the file is empty")
    with path.open("rb") as handle:
        head = handle.read(16)
    return FileBody(path, size), head


def _from_base64(file: FileInput, settings: WorkerSettings) -> bytes:
    encoded = str(file.base64)
    if len(encoded) * 3 // 4 > settings.max_base64_bytes + 3:
        raise _invalid(
            "file.base64", f"larger than HYPATOS_MAX_BASE64_BYTES ({settings.max_base64_bytes} bytes)"
        )
    try:
        content = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise _invalid("file.base64", "is not valid base64") from None
    if not content:
        raise _invalid("file.base64", "the file is empty")
    return content


def prepare_upload(file: FileInput | None, filename_param: str | None, settings: WorkerSettings) -> Upload:
    """The upload described by `file`, checked; `filename_param` is an explicit X-Hy-Filename."""
    if file is None:
        raise _invalid("file", "is required: give `file.path` (inbox) or `file.base64`")
    if file.path is not None:
        body, head = _from_inbox(file, settings)
        default_name = body.path.name
    else:
        content = _from_base64(file, settings)
        body, head, default_name = content, content[:16], None
    content_type = (file.content_type or sniff(head) or "").split(";")[0].strip().lower()
    if content_type not in SUPPORTED_TYPES:
        raise _invalid("file.content_type", f"must be one of {', '.join(sorted(SUPPORTED_TYPES))} "
                                            "(given or detected from the bytes)")  # fmt: skip
    name = filename_param or file.filename or default_name
    return Upload(body, content_type, header_filename(name) if name else None)


# --- downloads --------------------------------------------------------------------------------------


class DownloadTooLarge(PermanentError):
    """Raised when a base64 download exceeds the cap."""

    code = "payload_too_large"


class FileSink:
    """Streams a download into a temporary file in the outbox, hashing as it goes."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
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
        self._handle.write(chunk)
        self._sha256.update(chunk)
        self.size += len(chunk)

    def finish(self, final: Path) -> str:
        """Move the complete file to `final`; returns its sha256."""
        assert self._handle is not None
        self._handle.close()
        os.replace(self._handle.name, final)
        self._handle = None
        return self._sha256.hexdigest()

    def abort(self) -> None:
        """Remove a partial file, if any."""
        if self._handle is not None:
            self._handle.close()
            Path(self._handle.name).unlink(missing_ok=True)
            self._handle = None


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


def download_name(request_id: str, resource_id: str, headers: dict[str, str]) -> tuple[str, str]:
    """(filename as Hypatos gave it, or made from the id; file name in the outbox, unique per request)."""
    content_type = headers.get("content-type", "application/octet-stream").split(";")[0].strip()
    filename = headers.get("x-hy-filename") or f"{resource_id}{EXTENSIONS.get(content_type, '')}"
    safe = _UNSAFE_NAME.sub("_", f"{request_id}--{Path(filename).name}").strip("._") or "download"
    return filename, safe[:200]


def describe_download(
    sink: FileSink | MemorySink,
    headers: dict[str, str],
    request_id: str,
    resource_id: str,
    outbox: Path | None,
) -> dict[str, Any]:
    """The result's ``data`` for a finished download."""
    filename, stored_name = download_name(request_id, resource_id, headers)
    described: dict[str, Any] = {
        "content_type": headers.get("content-type", "application/octet-stream").split(";")[0].strip(),
        "filename": filename,
        "size": sink.size,
    }
    if isinstance(sink, FileSink):
        assert outbox is not None
        described["sha256"] = sink.finish(outbox / stored_name)
        described["path"] = stored_name
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
    return FileSink(settings.outbox_dir)
