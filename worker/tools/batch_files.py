"""The files of a batch folder and the ``processDocument`` request for each.

A file is part of the batch when its first bytes say PDF, PNG, JPEG or TIFF (what the API accepts);
hidden files, symbolic links and anything else are skipped.  Its request id is
``<connection>/<project>/<first 32 hex digits of the sha256 of its content>``: the same content
sent to the same project through the same connection is the same request, so a batch run again
skips what is done (the stored result is replayed) and resumes what is not.

The file travels as ``file.path`` when the folder lies inside ``HYPATOS_INBOX_DIR`` (the workers read
it from there; nothing large crosses the broker), else as ``file.base64`` (at most
``HYPATOS_MAX_BASE64_BYTES``).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tasks.files import sniff
from worker.messages import MAX_ID_LENGTH

#: Bytes read at a time while hashing.
CHUNK = 1024 * 1024


@dataclass(frozen=True)
class BatchFile:
    """One document of the batch."""

    path: Path
    #: The path relative to the batch folder, with ``/`` (how the report names it).
    name: str
    sha256: str
    size: int


def batch_id(connection: str, project_id: str, sha256: str) -> str:
    """The request id of a file's content; `ValueError` when it would be longer than ids may be."""
    request_id = f"{connection}/{project_id}/{sha256[:32]}"
    if len(request_id) > MAX_ID_LENGTH:
        raise ValueError(f"the connection and project names make request ids over {MAX_ID_LENGTH} characters")
    return request_id


def _candidates(folder: Path) -> Iterator[Path]:
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if any(part.startswith(".") for part in relative.parts) or path.is_symlink() or not path.is_file():
            continue
        yield path


def _digest(path: Path) -> tuple[str | None, str, int]:
    """The media type the file starts with, its sha256 and its size."""
    digest = hashlib.sha256()
    size = 0
    media = None
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            if size == 0:
                media = sniff(chunk[:16])
            digest.update(chunk)
            size += len(chunk)
    return media, digest.hexdigest(), size


def find_files(folder: Path) -> tuple[list[BatchFile], list[str]]:
    """The documents below `folder`, sorted by path, and the names of the files skipped."""
    found: list[BatchFile] = []
    skipped: list[str] = []
    for path in _candidates(folder):
        name = path.relative_to(folder).as_posix()
        media, sha256, size = _digest(path)
        if media is None:
            skipped.append(name)
        else:
            found.append(BatchFile(path, name, sha256, size))
    return found, skipped


def inbox_relative(path: Path, inbox: Path | None) -> str | None:
    """`path` relative to the inbox, when it lies inside it."""
    if inbox is None:
        return None
    real, root = path.resolve(), inbox.resolve()
    return real.relative_to(root).as_posix() if real.is_relative_to(root) else None


def file_field(file: BatchFile, inbox: Path | None, max_base64_bytes: int) -> dict[str, Any]:
    """The request's ``file``: an inbox path, else the bytes; `ValueError` when neither can carry it."""
    relative = inbox_relative(file.path, inbox)
    if relative is not None:
        return {"path": relative}
    if file.size > max_base64_bytes:
        raise ValueError(
            f"{file.size} bytes is more than HYPATOS_MAX_BASE64_BYTES ({max_base64_bytes}); "
            "put the folder inside HYPATOS_INBOX_DIR to send files by path"
        )
    return {"base64": base64.b64encode(file.path.read_bytes()).decode("ascii"), "filename": file.path.name}


def process_document_request(
    request_id: str, connection: str, project_id: str, file: dict[str, Any], options: dict[str, Any]
) -> dict[str, Any]:
    """The ``processDocument`` request of one file."""
    request: dict[str, Any] = {
        "id": request_id,
        "connection": connection,
        "operation": "processDocument",
        "params": {"projectId": project_id},
        "file": file,
    }
    if options:
        request["options"] = options
    return request
