"""`FileBody` over real HTTP to the emulator: every attempt sends the one open file, from its start."""

from __future__ import annotations

import asyncio
import base64
import os
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from pydantic import SecretStr

from tasks.files import open_in_inbox
from worker.client import HypatosClient
from worker.connections import Connection
from worker.errors import HypatosError
from worker.retry import RetryPolicy
from worker.tokens import TokenProvider
from worker.transport import ApiRequest, FileBody, Transport

FAST = RetryPolicy(attempts=3, budget_s=10, initial_s=0.01, max_s=0.05)
INSIDE = b"%PDF-1.7 inside\n" + os.urandom(600 * 1024)  # more than two chunks
OUTSIDE = b"%PDF-1.7 OUTSIDE\n" + b"x" * 1024


def _connection(emulator: Any) -> Connection:
    return Connection(
        name="main",
        endpoint_url=emulator.base_url,
        client_id="test-client",
        client_secret=SecretStr("test-secret"),
    )


def _upload(body: FileBody) -> ApiRequest:
    return ApiRequest(
        "POST", "/files", headers={"X-Hy-Filename": "inv.pdf"}, body=body, content_type="application/pdf"
    )


def _call(emulator: Any, request: ApiRequest, between_attempts: Any = None) -> Any:
    async def sleep(_: float) -> None:
        if between_attempts is not None:
            between_attempts()

    async def run() -> Any:
        async with aiohttp.ClientSession() as session:
            transport = Transport(session)
            client = HypatosClient(transport, TokenProvider(transport, policy=FAST), policy=FAST, sleep=sleep)
            response = await client.call(_connection(emulator), request)
            file_id = response.decoded()["id"]
            stored = await client.call(_connection(emulator), ApiRequest("GET", f"/files/{file_id}"))
            return response, stored.body

    return asyncio.run(run())


def test_given_a_retry_after_the_folder_was_swapped_for_a_link_then_every_attempt_sends_the_inbox_file(
    emulator: Any, tmp_path: Path
) -> None:
    # Given: an inbox file opened for upload, and an emulator failing the first upload attempt
    inbox, outside = tmp_path / "inbox", tmp_path / "outside"
    (inbox / "sub").mkdir(parents=True)
    outside.mkdir()
    (inbox / "sub" / "inv.pdf").write_bytes(INSIDE)
    (outside / "inv.pdf").write_bytes(OUTSIDE)
    emulator.set_faults(error_rate=1.0, error_statuses=[503], fault_operations=["Files_uploadFile"])

    def swap() -> None:
        (inbox / "sub").rename(inbox / "sub-old")
        (inbox / "sub").symlink_to(outside, target_is_directory=True)
        emulator.set_faults(error_rate=0)

    # When: the folder is swapped for a link between the attempts
    with open_in_inbox(inbox, "sub/inv.pdf") as body:
        response, stored = _call(emulator, _upload(body), between_attempts=swap)
        assert not body.closed  # the transport never closes it: its owner does
    # Then: both attempts carried the inbox file's bytes, and that is what was stored
    assert response.status == 201 and response.attempts == 2
    uploads = [c for c in emulator.requests() if c["operation"] == "Files_uploadFile"]
    assert [c["status"] for c in uploads] == [503, 201]
    for call in uploads:  # the log keeps the first bytes of each body
        logged = base64.b64decode(call["body"])
        assert call["body_size"] == len(INSIDE) and logged == INSIDE[: len(logged)]
    assert stored == INSIDE


def test_given_a_file_that_shrank_after_opening_then_the_call_fails_instead_of_sending_less(
    emulator: Any, tmp_path: Path
) -> None:
    path = tmp_path / "inv.pdf"
    path.write_bytes(INSIDE)
    with open_in_inbox(tmp_path, "inv.pdf") as body:
        path.write_bytes(INSIDE[:100])  # truncated in place: the open file shrinks
        with pytest.raises(HypatosError):
            _call(emulator, _upload(body))


def test_given_a_closed_file_body_then_reading_it_fails_clearly(tmp_path: Path) -> None:
    (tmp_path / "inv.pdf").write_bytes(INSIDE)
    body = open_in_inbox(tmp_path, "inv.pdf")
    body.close()
    body.close()  # twice is fine
    with pytest.raises(ValueError, match="closed"):
        body.read_at(0, 10)
    assert "closed" in repr(body)
