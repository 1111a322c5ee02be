"""Calls that create something run at most once per request id, even across crashes and redeliveries.

Before the API call a claim is taken in the result store.  When the claim is already held (an earlier
delivery was interrupted) or the call ended without an answer (timeout, connection lost after
sending), the creation may or may not have happened.  Then the operation's reconciliation looks for
what the earlier attempt created: found, it becomes this request's result; not found, the call is
made.  Operations without a way to look (``uploadFile``: the API cannot list files) fail with
``outcome_unknown`` rather than risk a second creation.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import structlog

from tasks.catalog import CATALOG, Operation
from tasks.requests import build_request
from tasks.validation import validate
from worker.classify import MAY_HAVE_BEEN_PROCESSED
from worker.connections import Connection
from worker.errors import HypatosError
from worker.runtime import Services
from worker.transport import ApiRequest, ApiResponse

log = structlog.get_logger(__name__)

Finder = Callable[[Services, Connection, Any], Awaitable[ApiResponse | None]]


async def _list(services: Services, connection: Connection, operation: str, params: dict[str, Any]) -> Any:
    declared = CATALOG[operation]
    request = build_request(declared, validate(declared, params, None), None)
    return (await services.client.call(connection, request)).decoded()


def _found(data: Any) -> ApiResponse:
    """A synthetic answer carrying what an earlier attempt created (the last real status was 200)."""
    return ApiResponse(
        status=200, headers={"content-type": "application/json"}, body=json.dumps(data).encode()
    )


async def _find_document(services: Services, connection: Connection, body: Any) -> ApiResponse | None:
    page = await _list(services, connection, "documentsList",
                       {"fileId": body["fileId"], "projectId": [body["projectId"]], "limit": 1})  # fmt: skip
    documents = (page.get("data") or []) if isinstance(page, dict) else []
    if not documents:
        return None
    document = documents[0]
    return _found({"documentId": document["id"], "fileId": body["fileId"], "projectId": body["projectId"]})


async def _find_project(services: Services, connection: Connection, body: Any) -> ApiResponse | None:
    name = body.get("name")
    if not name:
        return None
    page = await _list(services, connection, "projectsList", {"search": name, "limit": 50})
    matches = (page.get("data") or []) if isinstance(page, dict) else []
    exact = [p for p in matches if p.get("name") == name]
    return _found(exact[0]) if exact else None


#: How to find what an interrupted creation made, by operation.
FINDERS: dict[str, Finder] = {
    "processFileIntoDocument": _find_document,
    "projectsCreate": _find_project,
}


def _outcome_unknown(operation: Operation) -> HypatosError:
    return HypatosError(
        f"an earlier attempt of this {operation.name} was interrupted after it may have reached Hypatos, "
        "and the API offers no way to check; to run it again, resubmit with a new id",
        code="outcome_unknown",
        retryable=False,
    )


async def _reconcile(
    services: Services, operation: Operation, connection: Connection, body: Any
) -> ApiResponse | None:
    finder = FINDERS.get(operation.name)
    if finder is None:
        raise _outcome_unknown(operation)
    found = await finder(services, connection, body)
    log.info("creation_reconciled", found=found is not None)
    return found


async def create_once(
    services: Services,
    request_id: str,
    operation: Operation,
    connection: Connection,
    request: ApiRequest,
    body: Any,
) -> ApiResponse:
    """Run a creating call for `request_id` at most once; see the module docstring."""
    if not await services.results.claim(request_id):
        found = await _reconcile(services, operation, connection, body)
        if found is not None:
            return found
    try:
        return await services.client.call(connection, request, replay_safe=False)
    except HypatosError as error:
        if error.code in MAY_HAVE_BEEN_PROCESSED:
            found = await _reconcile(services, operation, connection, body)
            if found is not None:
                return found
        else:
            await services.results.release(request_id)  # an answer came back: nothing was created
        raise
