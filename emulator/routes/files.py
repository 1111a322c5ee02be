"""File upload (raw bytes, not multipart) and download."""

from __future__ import annotations

from aiohttp import web

from emulator.errors import json_response
from emulator.headers import header_text
from emulator.routes.base import Call, Operation

FILENAME_HEADER = "X-Hy-Filename"


async def upload_file(call: Call) -> web.StreamResponse:
    """Store the bytes; the file name is the header's text (UTF-8, else Latin-1; never percent-decoded)."""
    filename = call.request.headers.get(FILENAME_HEADER)
    stored = call.emu.store.add_file(
        call.body,
        call.request.headers.get("Content-Type", ""),
        None if filename is None else header_text(filename),
        call.actor,
    )
    return json_response({"id": stored.id}, 201)


async def download_file(call: Call) -> web.StreamResponse:
    stored, content = call.emu.store.get_file(call.request.match_info["id"])
    response = web.Response(body=content, content_type=stored.content_type)
    if stored.filename is not None:
        response.headers[FILENAME_HEADER] = stored.filename  # sent as UTF-8 bytes
    return response


OPERATIONS = (
    Operation("Files_uploadFile", "POST", "/files", "files.write", upload_file),
    Operation("Files_downloadById", "GET", "/files/{id}", "files.read", download_file),
)
