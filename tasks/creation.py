"""Calls that create something run at most once per request id, even across crashes and redeliveries.

Every attempt holds a lease on its request id (`worker.leases`).  When an earlier attempt started and
ended without a result (``RESUMED``: its worker died, or its call ended without an answer), the
creation may or may not have happened.  Then the operation's *finder* looks for what that attempt
created: found, it becomes this request's result; not found, the call is made.  A call that ends
without an answer (timeout, connection lost after sending) is not repeated blindly either: the finder
looks first.

``uploadFile`` has no finder (the API cannot list files).  A file that was uploaded but never
processed creates no document, so by default an interrupted upload is simply made again (and a
timeout or lost connection is retried like any other call): at worst Hypatos keeps an unused file.
A caller who wants the strict behaviour sends ``options: {"on_interrupted": "fail"}``: the request
then fails with ``outcome_unknown`` rather than upload a second time.

What a finder accepts as "created by this request":

- ``processFileIntoDocument``: a document of that file in that project whose ``externalId`` is the
  body's ``externalId`` when the body gives one; otherwise one created since the first attempt began
  (less `CLOCK_SKEW_S`).  Give ``externalId`` to make the match exact.
- ``projectsCreate``: a project with exactly that name, created since the first attempt began (less
  `CLOCK_SKEW_S`).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

import structlog

from tasks.catalog import CATALOG, Operation
from tasks.requests import build_request
from tasks.validation import UPLOAD_AGAIN, validate
from worker.classify import MAY_HAVE_BEEN_PROCESSED
from worker.connections import Connection
from worker.errors import ErrorCode, HypatosError
from worker.leases import Attempt
from worker.result_store import ClaimState
from worker.runtime import Services
from worker.transport import ApiRequest, ApiResponse

log = structlog.get_logger(__name__)

#: How far Hypatos' clock may be behind ours when comparing creation times.
CLOCK_SKEW_S = 300.0

Finder = Callable[[Services, Connection, Any, float], Awaitable[ApiResponse | None]]


async def _list(
    services: Services, connection: Connection, operation: str, params: dict[str, Any]
) -> tuple[list[Any], int]:
    """The items of one list page, and the HTTP calls it took."""
    declared = CATALOG[operation]
    request = build_request(declared, validate(declared, params, None), None)
    response = await services.client.call(connection, request)
    page = response.decoded()
    return ((page.get("data") or []) if isinstance(page, dict) else []), response.attempts


def _created_since(item: dict[str, Any], since: float) -> bool:
    try:
        created = datetime.fromisoformat(str(item.get("createdAt")).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return False
    return created >= since - CLOCK_SKEW_S


def _found(data: Any, attempts: int) -> ApiResponse:
    """A synthetic answer carrying what an earlier attempt created (the last real status was 200)."""
    return ApiResponse(
        status=200,
        headers={"content-type": "application/json"},
        body=json.dumps(data).encode(),
        attempts=attempts,
    )


async def _find_document(
    services: Services, connection: Connection, body: Any, since: float
) -> ApiResponse | None:
    params = {"fileId": body["fileId"], "projectId": [body["projectId"]], "limit": 50}
    documents, attempts = await _list(services, connection, "documentsList", params)
    if body.get("externalId"):
        matches = [d for d in documents if d.get("externalId") == body["externalId"]]
    else:
        matches = [d for d in documents if _created_since(d, since)]
    if not matches:
        return None
    document = min(matches, key=lambda d: str(d.get("createdAt")))
    found = {"documentId": document["id"], "fileId": body["fileId"], "projectId": body["projectId"]}
    return _found(found, attempts)


async def _find_project(
    services: Services, connection: Connection, body: Any, since: float
) -> ApiResponse | None:
    name = body.get("name")
    if not name:
        return None
    projects, attempts = await _list(services, connection, "projectsList", {"search": name, "limit": 50})
    matches = [p for p in projects if p.get("name") == name and _created_since(p, since)]
    return _found(min(matches, key=lambda p: str(p.get("createdAt"))), attempts) if matches else None


#: How to find what an interrupted creation made, by operation.
FINDERS: dict[str, Finder] = {
    "processFileIntoDocument": _find_document,
    "projectsCreate": _find_project,
}


def _outcome_unknown(operation: Operation) -> HypatosError:
    return HypatosError(
        f"an earlier attempt of this {operation.name} was interrupted after it may have reached Hypatos, "
        "and the API offers no way to check (the request asked to fail then: on_interrupted); "
        "to run it again, resubmit with a new id",
        code=ErrorCode.OUTCOME_UNKNOWN,
        retryable=False,
    )


async def _reconcile(
    services: Services, operation: Operation, connection: Connection, body: Any, attempt: Attempt
) -> ApiResponse | None:
    finder = FINDERS.get(operation.name)
    if finder is None:
        attempt.keep_started = True
        raise _outcome_unknown(operation)
    found = await finder(services, connection, body, attempt.started_at)
    log.info("creation_reconciled", found=found is not None)
    return found


def repeats_when_interrupted(operation: Operation, options: Mapping[str, Any]) -> bool:
    """Whether an interrupted `operation` is simply made again: one without a finder, unless the
    request's ``on_interrupted`` option says ``fail``."""
    return operation.name not in FINDERS and options.get("on_interrupted", UPLOAD_AGAIN) == UPLOAD_AGAIN


async def create_once(
    services: Services,
    operation: Operation,
    connection: Connection,
    request: ApiRequest,
    body: Any,
    attempt: Attempt,
    options: Mapping[str, Any] | None = None,
) -> ApiResponse:
    """Run a creating call at most once for the attempt's request id; see the module docstring."""
    if repeats_when_interrupted(operation, options or {}):
        if attempt.state is ClaimState.RESUMED:
            log.info("creation_repeated", reason="an earlier attempt was interrupted; repeating is harmless")
        return await services.client.call(connection, request)
    if attempt.state is ClaimState.RESUMED:
        found = await _reconcile(services, operation, connection, body, attempt)
        if found is not None:
            return found
    try:
        return await services.client.call(connection, request, replay_safe=False)
    except HypatosError as error:
        if error.code not in MAY_HAVE_BEEN_PROCESSED:
            raise  # an answer came back: nothing was created
        attempt.keep_started = True
        try:
            found = await _reconcile(services, operation, connection, body, attempt)
        except HypatosError as unknown:
            unknown.attempts += error.attempts  # the interrupted call counts (and makes the result stored)
            raise
        if found is None:
            raise
        attempt.keep_started = False
        return replace(found, attempts=found.attempts + error.attempts)
