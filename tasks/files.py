"""Upload sources: where the bytes of ``uploadFile`` come from, and the name sent with them.

``file.path`` names a file inside the operator's inbox folder.  It is opened once, when the request is
checked, by walking its components one by one from the inbox without following any symbolic link;
every attempt then sends that one open file (`worker.transport.FileBody`), so swapping a folder for
a link meanwhile cannot make the worker send a file from outside the inbox.  ``file.base64`` carries
the bytes themselves, up to ``HYPATOS_MAX_BASE64_BYTES``.

The content type is the request's, or detected from the first bytes.  The file name travels in
``X-Hy-Filename``: an ASCII name as it is, any other name UTF-8 then percent-encoded, so the header
is plain ASCII whatever the receiving side assumes about header bytes; it must fit the API's 256
characters once encoded.
"""

from __future__ import annotations

import base64
import binascii
import errno
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from tasks.catalog import CATALOG
from tasks.text import text_problem
from worker.errors import ValidationError
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
FILENAME_HEADER = "X-Hy-Filename"
#: The API's limit on `X-Hy-Filename`, as declared in the catalog.
MAX_FILENAME_LENGTH = next(p.max_length for p in CATALOG["uploadFile"].params if p.name == FILENAME_HEADER)
#: Characters a percent-encoded name keeps as they are: printable ASCII except ``%`` itself.
_KEPT_IN_ENCODED_NAME = "".join(chr(code) for code in range(0x20, 0x7F) if chr(code) != "%")

_DIRECTORY_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
#: O_NONBLOCK: opening a FIFO planted in the inbox must not hang the worker (refused right after).
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
_OPEN_PROBLEMS = {
    errno.ENOENT: "no such file in the inbox folder",
    errno.ELOOP: "symbolic links are not followed in the inbox folder",
    errno.ENOTDIR: "a component of the path is not a folder (symbolic links are not followed)",
    errno.EACCES: "the worker may not read this file",
    errno.EPERM: "the worker may not read this file",
}


def _invalid(field: str, message: str) -> ValidationError:
    return ValidationError(f"uploadFile: {field}: {message}", details=[{"field": field, "message": message}])


def sniff(head: bytes) -> str | None:
    """The supported media type the bytes start with, if any."""
    return next((media for magic, media in SIGNATURES if head.startswith(magic)), None)


def header_filename(name: str) -> str:
    """`name` as the `X-Hy-Filename` value: ASCII as it is, anything else UTF-8 percent-encoded.

    aiohttp would send a Latin-1 name as UTF-8 bytes, other Hypatos clients send Latin-1 bytes: a
    non-ASCII header is ambiguous, so no such header is sent.
    """
    return name if name.isascii() else quote(name, safe=_KEPT_IN_ENCODED_NAME)


def inbox_path_parts(path: str) -> list[str]:
    """The components of a ``file.path``, or `ValueError` saying why it cannot name a file in the inbox."""
    if "\x00" in path:
        raise ValueError("must not contain NUL characters")
    if path.startswith("/"):
        raise ValueError("must be relative to the inbox folder, not absolute")
    parts = path.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise ValueError("must not have empty, `.` or `..` components")
    return parts


def _open_problem(exc: OSError) -> str:
    return _OPEN_PROBLEMS.get(exc.errno or 0, f"cannot be opened ({exc.strerror})")


def _walk_open(inbox: Path, parts: list[str]) -> int:
    """The file descriptor of `parts` below `inbox`, opened without following any link."""
    try:
        directory = os.open(inbox, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        message = f"the inbox folder (HYPATOS_INBOX_DIR) cannot be opened ({exc.strerror})"
        raise _invalid("file.path", message) from None
    try:
        for part in parts[:-1]:
            inner = os.open(part, _DIRECTORY_FLAGS, dir_fd=directory)
            os.close(directory)
            directory = inner
        return os.open(parts[-1], _FILE_FLAGS, dir_fd=directory)
    except OSError as exc:
        raise _invalid("file.path", _open_problem(exc)) from None
    finally:
        os.close(directory)


def open_in_inbox(inbox: Path, path: str) -> FileBody:
    """The regular, non-empty file at `path` below `inbox`, open; see the module docstring."""
    try:
        parts = inbox_path_parts(path)
    except ValueError as exc:
        raise _invalid("file.path", str(exc)) from None
    fd = _walk_open(inbox, parts)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise _invalid("file.path", "is not a regular file")
        if info.st_size == 0:
            raise _invalid("file.path", "the file is empty")
    except BaseException:
        os.close(fd)
        raise
    return FileBody(fd, info.st_size, parts[-1])


@dataclass(frozen=True)
class Upload:
    """An upload's body and headers, ready for the `ApiRequest`; close it (or use ``with``) when done."""

    body: bytes | FileBody
    content_type: str
    filename: str | None

    def close(self) -> None:
        """Close the inbox file, if the body is one."""
        if isinstance(self.body, FileBody):
            self.body.close()

    def __enter__(self) -> Upload:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


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


def _content_type(file: FileInput, head: bytes) -> str:
    content_type = (file.content_type or sniff(head) or "").split(";")[0].strip().lower()
    if content_type not in SUPPORTED_TYPES:
        raise _invalid(
            "file.content_type",
            f"must be one of {', '.join(sorted(SUPPORTED_TYPES))} (given or detected from the bytes)",
        )
    return content_type


def _filename(file: FileInput, filename_param: str | None, default_name: str | None) -> str | None:
    """The encoded `X-Hy-Filename`, checked against the API's limit after encoding."""
    if filename_param:
        field, name = f"params.{FILENAME_HEADER}", filename_param
    elif file.filename:
        field, name = "file.filename", file.filename
    elif default_name:
        field, name = "file.path", "".join(ch for ch in default_name if ch.isprintable())
    else:
        return None
    problem = text_problem(name, header=True)
    if problem:
        raise _invalid(field, problem)
    encoded = header_filename(name)
    if len(encoded) > MAX_FILENAME_LENGTH:
        hint = " (give a shorter `file.filename`)" if field == "file.path" else ""
        raise _invalid(
            field,
            f"the file name is {len(encoded)} characters once percent-encoded; "
            f"{FILENAME_HEADER} takes at most {MAX_FILENAME_LENGTH}{hint}",
        )
    return encoded or None


def prepare_upload(file: FileInput | None, filename_param: str | None, settings: WorkerSettings) -> Upload:
    """The upload described by `file`, checked; `filename_param` is an explicit X-Hy-Filename.

    With ``file.path`` the returned `Upload` holds the open inbox file: close it when the request ends.
    """
    if file is None:
        raise _invalid("file", "is required: give `file.path` (inbox) or `file.base64`")
    if file.path is None:
        content = _from_base64(file, settings)
        return Upload(content, _content_type(file, content[:16]), _filename(file, filename_param, None))
    if settings.inbox_dir is None:
        raise _invalid("file.path", "uploads by path need an inbox folder: set HYPATOS_INBOX_DIR")
    body = open_in_inbox(settings.inbox_dir, file.path)
    try:
        content_type = _content_type(file, body.read_at(0, 16))
        return Upload(body, content_type, _filename(file, filename_param, body.name))
    except BaseException:
        body.close()
        raise
