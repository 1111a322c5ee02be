"""Download sinks: unique outbox names, never overwriting, a size cap, and a memory budget for base64."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

import tasks.downloads
from tasks.byte_budget import BudgetExceeded, ByteBudget
from tasks.catalog import CATALOG
from tasks.downloads import DownloadTooLarge, download, header_text, outbox_name
from worker.messages import Request, Result
from worker.settings import WorkerSettings
from worker.transport import ApiRequest, ApiResponse

PDF = b"%PDF-1.7\n" + bytes(range(256)) * 8


@dataclass
class StreamingClient:
    """Stands in for `HypatosClient.call`: streams `chunks` into the request's sink, like the transport."""

    chunks: list[bytes]
    headers: dict[str, str] = field(
        default_factory=lambda: {"content-type": "application/pdf", "x-hy-filename": "invoice.pdf"}
    )
    #: Set to make calls wait (to hold many downloads in flight at once).
    gate: asyncio.Event | None = None
    in_flight: int = 0
    most_in_flight: int = 0

    async def call(self, connection: Any, request: ApiRequest) -> ApiResponse:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            if self.gate is not None:
                await self.gate.wait()
            assert request.sink is not None
            request.sink.start()
            for chunk in self.chunks:
                request.sink.write(chunk)
            return ApiResponse(200, self.headers, b"")
        finally:
            self.in_flight -= 1


def _services(client: StreamingClient, **settings: Any) -> Any:
    return SimpleNamespace(settings=WorkerSettings(**settings), client=client)


def _request(request_id: str, connection: str = "main", output: str = "outbox") -> Request:
    return Request(
        id=request_id, connection=connection, operation="retrieveFile", params={"id": "f1"}, output=output
    )


def _download(services: Any, request: Request) -> dict[str, Any]:
    answer = asyncio.run(download(services, None, CATALOG["retrieveFile"], {"id": "f1"}, request))  # type: ignore[arg-type]
    return answer.data


def test_given_ids_that_read_alike_on_different_connections_then_their_outbox_names_differ() -> None:
    first, second = outbox_name("main", "inv 7", "invoice.pdf"), outbox_name("other", "inv/7", "invoice.pdf")
    assert first != second
    assert first.startswith("main--inv_7--") and first.endswith("--invoice.pdf")
    assert second.startswith("other--inv_7--") and second.endswith("--invoice.pdf")
    # the hash alone tells apart ids that only differ in replaced characters, on one connection too
    assert outbox_name("main", "inv 7", "x.pdf") != outbox_name("main", "inv/7", "x.pdf")
    assert outbox_name("main", "inv 7", "x.pdf") == outbox_name("main", "inv 7", "x.pdf")


@pytest.mark.parametrize(
    ("connection", "request_id", "filename"),
    [
        ("main", "../../etc/passwd", "../../x.pdf"),
        ("c" * 300, "i" * 128, "f" * 300 + ".pdf"),
        ("main", "...", "..."),
        ("main", "id", ""),
        ("ma\x00in", "lone\ud800", "nul\x00.pdf"),
    ],
)
def test_given_hostile_or_long_parts_then_the_outbox_name_is_one_safe_component(
    connection: str, request_id: str, filename: str
) -> None:
    name = outbox_name(connection, request_id, filename)
    assert "/" not in name and not name.startswith(".") and name.isascii()
    assert len(name) <= 240


def test_given_two_requests_whose_names_used_to_collide_then_both_files_are_kept(tmp_path: Path) -> None:
    outbox = tmp_path / "outbox"
    first = _download(_services(StreamingClient([b"%PDF first"]), outbox_dir=outbox), _request("inv 7"))
    second = _download(
        _services(StreamingClient([b"%PDF second"]), outbox_dir=outbox), _request("inv/7", connection="other")
    )
    assert first["path"] != second["path"]
    assert (outbox / first["path"]).read_bytes() == b"%PDF first"
    assert (outbox / second["path"]).read_bytes() == b"%PDF second"


@pytest.mark.parametrize("hard_links", [True, False])
def test_given_the_name_is_taken_then_another_is_chosen_and_the_existing_file_is_untouched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hard_links: bool
) -> None:
    # Given: a file already at the name (the same request ran before), on a filesystem with or
    # without hard links
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    taken = outbox_name("main", "inv 7", "invoice.pdf")
    (outbox / taken).write_bytes(b"earlier download")
    if not hard_links:

        def no_links(*_: Any) -> None:
            raise PermissionError(1, "Operation not permitted")

        monkeypatch.setattr(tasks.downloads.os, "link", no_links)
    # When: downloading twice more
    services = _services(StreamingClient([PDF]), outbox_dir=outbox)
    names = [_download(services, _request("inv 7"))["path"] for _ in range(2)]
    # Then: new names, numbered; nothing replaced; no temporary file left
    assert names == [taken.replace(".pdf", "-2.pdf"), taken.replace(".pdf", "-3.pdf")]
    assert (outbox / taken).read_bytes() == b"earlier download"
    assert all((outbox / name).read_bytes() == PDF for name in names)
    assert sorted(p.name for p in outbox.iterdir()) == sorted([taken, *names])


def test_given_a_download_over_the_limit_then_it_fails_and_no_partial_file_is_left(tmp_path: Path) -> None:
    outbox = tmp_path / "outbox"
    services = _services(StreamingClient([b"x" * 400] * 3), outbox_dir=outbox, max_download_bytes=1000)
    with pytest.raises(DownloadTooLarge) as caught:
        _download(services, _request("big"))
    assert caught.value.code == "payload_too_large" and not caught.value.retryable
    assert "HYPATOS_MAX_DOWNLOAD_BYTES" in caught.value.message
    assert list(outbox.iterdir()) == []
    # exactly the limit is fine
    services = _services(StreamingClient([b"x" * 500] * 2), outbox_dir=outbox, max_download_bytes=1000)
    exact = _download(services, _request("exact"))
    assert exact["size"] == 1000 and (outbox / exact["path"]).stat().st_size == 1000


def test_given_a_latin1_file_name_header_then_it_is_read_as_latin1_and_the_result_serialises() -> None:
    # aiohttp decodes header bytes as UTF-8 with surrogateescape: b"M\xe4rz.pdf" arrives like this
    arrived = b"M\xe4rz.pdf".decode("utf-8", "surrogateescape")
    assert header_text(arrived) == "März.pdf"
    assert header_text("März.pdf") == "März.pdf"  # UTF-8 stays as it is
    client = StreamingClient([PDF], headers={"content-type": "application/pdf", "x-hy-filename": arrived})
    data = _download(_services(client), _request("latin", output="base64"))
    assert data["filename"] == "März.pdf" and base64.b64decode(data["content_base64"]) == PDF
    assert data["sha256"] == hashlib.sha256(PDF).hexdigest()
    Result(
        id="latin",
        connection="main",
        operation="retrieveFile",
        status="succeeded",
        http_status=200,
        data=data,
        error=None,
        attempts=1,
        duration_ms=1,
    ).model_dump_json()


def test_given_many_base64_downloads_then_the_process_holds_only_as_many_as_the_budget_allows() -> None:
    # Given: room for two base64 files at once
    client = StreamingClient([b"%PDF" + b"x" * 96])
    services = _services(client, max_base64_bytes=100, base64_memory_bytes=250)

    async def run() -> list[Any]:
        client.gate = asyncio.Event()
        operation, params = CATALOG["retrieveFile"], {"id": "f1"}
        requests = [_request(f"b{i}", output="base64") for i in range(5)]
        calls = [asyncio.create_task(download(services, None, operation, params, r)) for r in requests]
        for _ in range(20):
            await asyncio.sleep(0)
        waiting_while_blocked = client.in_flight
        client.gate.set()
        return [waiting_while_blocked, *(await asyncio.gather(*calls))]

    # When: five run concurrently
    in_flight, *answers = asyncio.run(run())
    # Then: two were in flight, the others waited for room; all succeeded
    assert in_flight == 2 and client.most_in_flight == 2
    assert [a.data["size"] for a in answers] == [100] * 5


def test_given_a_base64_download_over_its_cap_then_it_fails_with_payload_too_large() -> None:
    services = _services(StreamingClient([b"x" * 60] * 2), max_base64_bytes=100, base64_memory_bytes=100)
    with pytest.raises(DownloadTooLarge, match="HYPATOS_MAX_BASE64_BYTES"):
        _download(services, _request("big", output="base64"))


def test_given_a_budget_smaller_than_one_base64_file_then_the_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="HYPATOS_MAX_BASE64_BYTES"):
        WorkerSettings(max_base64_bytes=100, base64_memory_bytes=99)


class TestByteBudget:
    """The weighted, first-come-first-served reservation behind the base64 budget."""

    def test_a_reservation_larger_than_the_budget_fails_at_once(self) -> None:
        async def run() -> None:
            async with ByteBudget(10, "HYPATOS_X").hold(11):
                pass

        with pytest.raises(BudgetExceeded, match="HYPATOS_X"):
            asyncio.run(run())

    def test_a_large_waiter_is_not_overtaken_by_later_small_ones(self) -> None:
        async def run() -> list[str]:
            budget, order = ByteBudget(10, "HYPATOS_X"), []

            async def take(name: str, size: int, hold_s: float = 0) -> None:
                async with budget.hold(size):
                    order.append(name)
                    await asyncio.sleep(hold_s)

            first = asyncio.create_task(take("first", 6, 0.01))
            await asyncio.sleep(0)
            large = asyncio.create_task(take("large", 10))
            await asyncio.sleep(0)
            small = asyncio.create_task(take("small", 4))  # would fit now, but must not jump the queue
            await asyncio.gather(first, large, small)
            assert budget.held == 0
            return order

        assert asyncio.run(run()) == ["first", "large", "small"]

    def test_a_cancelled_waiter_gives_its_place_up(self) -> None:
        async def run() -> int:
            budget = ByteBudget(10, "HYPATOS_X")
            large, small = budget.hold(10), budget.hold(2)
            async with budget.hold(8):
                blocked = asyncio.create_task(large.__aenter__())
                behind = asyncio.create_task(small.__aenter__())
                await asyncio.sleep(0)
                blocked.cancel()
                await asyncio.wait_for(behind, 1)  # no longer behind the cancelled one
                held = budget.held
                await small.__aexit__(None, None, None)
            return held

        assert asyncio.run(run()) == 10


def test_given_a_download_is_interrupted_then_its_partial_file_is_removed(tmp_path: Path) -> None:
    class Dropping(StreamingClient):
        async def call(self, connection: Any, request: ApiRequest) -> ApiResponse:
            assert request.sink is not None
            request.sink.start()
            request.sink.write(b"%PDF partial")
            raise ConnectionResetError("lost")

    outbox = tmp_path / "outbox"
    with pytest.raises(ConnectionResetError):
        _download(_services(Dropping([]), outbox_dir=outbox), _request("cut"))
    assert os.listdir(outbox) == []
