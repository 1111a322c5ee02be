"""Turning a `Result` into the bytes that are stored and published, once, safely.

`serialize_result` is the only way a result becomes a message body:

- secrets are removed: any access token, client secret or HTTP Basic encoding of the request's
  connection that a careless server echoed into an error body is replaced by ``[REDACTED]``;
- the body is bounded: past ``HYPATOS_MAX_RESULT_BYTES`` the result becomes a failed
  ``result_too_large`` result instead (the broker would refuse a huge message, or take a worker's
  memory with it);
- it never raises: data that cannot be written as JSON (a body nested too deeply, text that is not
  valid Unicode) becomes a failed ``unexpected_response`` result.

The same bytes are stored for replay and published, so a replayed result is identical to the first.
"""

from __future__ import annotations

import structlog

from worker.errors import ErrorCode
from worker.logging import redact_text
from worker.messages import Result, ResultError

log = structlog.get_logger(__name__)


def _replaced(result: Result, code: str, message: str) -> Result:
    return result.model_copy(
        update={
            "status": "failed",
            "data": None,
            "error": ResultError(code=code, message=message, retryable=False),
        }
    )


def _dump(result: Result) -> str | None:
    try:
        return result.model_dump_json()
    except (ValueError, RecursionError) as exc:  # pydantic's serialization errors are ValueErrors
        log.warning("result_not_serializable", error=type(exc).__name__)
        return None


def serialize_result(result: Result, *, scope: str | None, max_bytes: int) -> tuple[Result, bytes]:
    """The result as it will be published (maybe replaced, see the module docstring) and its bytes."""
    text = _dump(result)
    if text is None:
        result = _replaced(
            result,
            ErrorCode.UNEXPECTED_RESPONSE,
            "Hypatos answered with a body that cannot be relayed as JSON "
            "(nested too deeply, or not valid Unicode)",
        )
        text = result.model_dump_json()
    body = redact_text(text, scope).encode("utf-8")
    if len(body) > max_bytes:
        result = _replaced(
            result,
            ErrorCode.RESULT_TOO_LARGE,
            f"the result is {len(body)} bytes, more than HYPATOS_MAX_RESULT_BYTES ({max_bytes}); "
            "ask for less (max_items, narrower filters) or download files to the outbox",
        )
        body = redact_text(result.model_dump_json(), scope).encode("utf-8")
    return result, body
