"""Paging rules shared by the list endpoints: default 20, clamp to 50, reject out-of-range values."""

from __future__ import annotations

from collections.abc import Mapping

from emulator.errors import ApiError

DEFAULT_LIMIT = 20
MAX_LIMIT = 50


def _integer(raw: str | None, default: int) -> int | None:
    if raw is None:
        return default
    try:
        return int(raw.strip())
    except ValueError:
        return None


def parse_paging(query: Mapping[str, str], error_status: int = 400) -> tuple[int, int]:
    """Return (offset, limit); negative or non-integer values are errors, large limits are clamped."""
    offset = _integer(query.get("offset"), 0)
    if offset is None or offset < 0:
        raise ApiError(error_status, "Offset out of range", "The provided offset is out of range")
    limit = _integer(query.get("limit"), DEFAULT_LIMIT)
    if limit is None or limit < 0:
        raise ApiError(error_status, "Limit out of range", "Limit is out of range")
    return offset, min(limit, MAX_LIMIT)


def check_offset(offset: int, total: int, error_status: int = 400) -> None:
    """An offset past the end of the collection is out of range (an offset equal to the size is not)."""
    if offset > total:
        raise ApiError(error_status, "Offset out of range", "The provided offset is out of range")


def envelope(data: list, offset: int, limit: int, total: int) -> dict:
    """The list envelope the real API returns (`data`, not the spec's `documents`)."""
    return {"data": data, "limit": limit, "offset": offset, "totalCount": total}


def envelope_bytes(items: list[bytes], offset: int, limit: int, total: int) -> bytes:
    """`envelope` with items that are serialized already (documents cache their JSON)."""
    return b'{"data":[%s],"limit":%d,"offset":%d,"totalCount":%d}' % (b",".join(items), limit, offset, total)
