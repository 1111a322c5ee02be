"""``all_pages``: follow ``offset``/``limit`` through a list operation and return one combined list.

The walk starts at the request's ``offset`` (default 0) with pages of the request's ``limit`` (default
and at most 50), and stops at the first of: ``totalCount`` reached, a short or empty page, or
``max_items`` collected (``HYPATOS_MAX_ITEMS`` by default and at most).  ``data`` is the list
envelope with every item: ``{data, totalCount, offset, limit, pages, truncated}``, where
``truncated`` says ``max_items`` cut the walk short.

Items are few bytes or many: the walk also counts the bytes of the page bodies as they arrive and
fails with ``result_too_large`` as soon as they pass ``HYPATOS_MAX_RESULT_BYTES``, so a worker never
holds much more than that for one request.
"""

from __future__ import annotations

from typing import Any

from tasks.catalog import Operation
from tasks.outcomes import Answer
from tasks.requests import build_request
from worker.connections import Connection
from worker.errors import ErrorCode, PermanentError
from worker.runtime import Services

#: The API's largest page.
MAX_PAGE_SIZE = 50


class ResultTooLarge(PermanentError):
    """Raised when the pages of an ``all_pages`` walk add up to more than ``HYPATOS_MAX_RESULT_BYTES``."""

    code = ErrorCode.RESULT_TOO_LARGE


def _too_large(limit: int, pages: int, items: int) -> ResultTooLarge:
    return ResultTooLarge(
        f"the list is larger than HYPATOS_MAX_RESULT_BYTES ({limit} bytes): passed after {pages} pages "
        f"({items} items); ask for fewer items with `max_items` or narrow the list with filters"
    )


def _page_items(page: Any) -> tuple[list[Any], int | None]:
    if not isinstance(page, dict) or not isinstance(page.get("data"), list):
        raise PermanentError(
            "a list page did not have the {data, totalCount} envelope", code=ErrorCode.UNEXPECTED_RESPONSE
        )
    total = page.get("totalCount")
    return page["data"], total if isinstance(total, int) else None


async def fetch_all_pages(
    services: Services, connection: Connection, operation: Operation, params: dict[str, Any], max_items: int
) -> Answer:
    """Every item of a list operation, page by page; see the module docstring."""
    page_size = min(params.get("limit") or MAX_PAGE_SIZE, MAX_PAGE_SIZE)
    start = offset = params.get("offset", 0)
    max_bytes = services.settings.max_result_bytes
    items: list[Any] = []
    total: int | None = None
    attempts = pages = received = 0
    status = 200
    while len(items) < max_items:
        limit = min(page_size, max_items - len(items))
        request = build_request(operation, {**params, "offset": offset, "limit": limit}, None)
        response = await services.client.call(connection, request)
        attempts, pages, status = attempts + response.attempts, pages + 1, response.status
        received += len(response.body)
        if received > max_bytes:
            error = _too_large(max_bytes, pages, len(items))
            error.attempts, error.http_status = attempts, status
            raise error
        batch, total = _page_items(response.decoded())
        items.extend(batch[:limit])
        offset += len(batch)
        if len(batch) < limit or (total is not None and offset >= total):
            break
    truncated = total is not None and start + len(items) < total
    data = {
        "data": items,
        "totalCount": total,
        "offset": start,
        "limit": page_size,
        "pages": pages,
        "truncated": truncated,
    }
    return Answer(status, data, attempts)
