"""``all_pages`` stops on items and on bytes: past HYPATOS_MAX_RESULT_BYTES it fails, fetching no more."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qs

import pytest

from tasks.catalog import CATALOG
from tasks.paging import ResultTooLarge, fetch_all_pages
from worker.settings import WorkerSettings
from worker.transport import ApiRequest, ApiResponse


class ListingClient:
    """Answers list pages of `total` documents, each carrying `item_bytes` of text."""

    def __init__(self, total: int, item_bytes: int) -> None:
        self.total, self.item_bytes = total, item_bytes
        self.offsets: list[int] = []

    async def call(self, connection: Any, request: ApiRequest) -> ApiResponse:
        query = parse_qs("&".join(f"{k}={v}" for k, v in request.query))
        offset, limit = int(query["offset"][0]), int(query["limit"][0])
        self.offsets.append(offset)
        ids = range(offset, min(offset + limit, self.total))
        items = [{"id": f"d{i}", "text": "x" * self.item_bytes} for i in ids]
        page = {"data": items, "limit": limit, "offset": offset, "totalCount": self.total}
        return ApiResponse(200, {"content-type": "application/json"}, json.dumps(page).encode())


def _walk(client: ListingClient, max_items: int = 10_000, **settings: Any) -> Any:
    services = SimpleNamespace(settings=WorkerSettings(**settings), client=client)
    return asyncio.run(fetch_all_pages(services, None, CATALOG["documentsList"], {"limit": 50}, max_items))  # type: ignore[arg-type]


def test_given_a_list_within_the_byte_limit_then_every_item_is_returned() -> None:
    answer = _walk(ListingClient(total=120, item_bytes=100), max_result_bytes=1024 * 1024)
    assert len(answer.data["data"]) == 120 and answer.data["pages"] == 3 and not answer.data["truncated"]


def test_given_pages_adding_up_past_the_byte_limit_then_the_walk_fails_and_fetches_no_more() -> None:
    # Given: 1,000 documents of about 10 kB each (about 500 kB per page) and a 1.2 MB limit
    client = ListingClient(total=1000, item_bytes=10_000)
    # When: all pages are asked for
    with pytest.raises(ResultTooLarge) as caught:
        _walk(client, max_result_bytes=1_200_000)
    # Then: the third page passed the limit; nothing was fetched after it
    error = caught.value
    assert error.code == "result_too_large" and error.retryable is False
    assert "HYPATOS_MAX_RESULT_BYTES (1200000 bytes)" in error.message and "max_items" in error.message
    assert client.offsets == [0, 50, 100]
    assert error.attempts == 3 and error.http_status == 200


def test_given_max_items_keeps_the_walk_under_the_byte_limit_then_it_succeeds_truncated() -> None:
    answer = _walk(ListingClient(total=1000, item_bytes=10_000), max_items=80, max_result_bytes=1_000_000)
    assert len(answer.data["data"]) == 80 and answer.data["truncated"] is True


def test_the_default_result_limit_is_16_mib() -> None:
    assert WorkerSettings().max_result_bytes == 16 * 1024 * 1024
