"""``all_pages``: follow ``offset``/``limit`` through a list operation and return one combined list.

The walk starts at the request's ``offset`` (default 0) with pages of the request's ``limit`` (default
and at most 50), and stops at the first of: ``totalCount`` reached, a short or empty page, or
``max_items`` collected (``HYPATOS_MAX_ITEMS`` by default and at most).  ``data`` is the list
envelope with every item: ``{data, totalCount, offset, limit, pages, truncated}``, where
``truncated`` says ``max_items`` cut the walk short.
"""

from __future__ import annotations

from typing import Any

from tasks.catalog import Operation
from tasks.outcomes import Answer
from tasks.requests import build_request
from worker.connections import Connection
from worker.errors import PermanentError
from worker.runtime import Services

#: The API's largest page.
MAX_PAGE_SIZE = 50


def _page_items(page: Any) -> tuple[list[Any], int | None]:
    if not isinstance(page, dict) or not isinstance(page.get("data"), list):
        raise PermanentError(
            "a list page did not have the {data, totalCount} envelope", code="unexpected_response"
        )
    total = page.get("totalCount")
    return page["data"], total if isinstance(total, int) else None


async def fetch_all_pages(
    services: Services, connection: Connection, operation: Operation, params: dict[str, Any], max_items: int
) -> Answer:
    """Every item of a list operation, page by page; see the module docstring."""
    page_size = min(params.get("limit") or MAX_PAGE_SIZE, MAX_PAGE_SIZE)
    start = offset = params.get("offset", 0)
    items: list[Any] = []
    total: int | None = None
    attempts = pages = 0
    status = 200
    while len(items) < max_items:
        limit = min(page_size, max_items - len(items))
        request = build_request(operation, {**params, "offset": offset, "limit": limit}, None)
        response = await services.client.call(connection, request)
        attempts, pages, status = attempts + response.attempts, pages + 1, response.status
        batch, total = _page_items(response.decoded())
        items.extend(batch[:limit])
        offset += len(batch)
        if len(batch) < limit or (total is not None and offset >= total):
            break
    truncated = total is not None and start + len(items) < total
    data = {"data": items, "totalCount": total, "offset": start, "limit": page_size, "pages": pages,
            "truncated": truncated}  # fmt: skip
    return Answer(status, data, attempts)
