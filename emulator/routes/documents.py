"""Document operations: get, list, states, process-file, external data/id, title, transfer."""

from __future__ import annotations

from aiohttp import web

from emulator import ids
from emulator.errors import bad_request, json_response
from emulator.routes.base import Call, Operation
from emulator.state.documents import STATE_SET
from emulator.state.paging import check_offset, envelope_bytes, parse_paging
from emulator.state.store import SORT_KEYS, TITLE_MAX_LENGTH, clean_external_data

ACCEPTED = 202


def _accepted() -> web.Response:
    """202 with an empty body, as the spec shows for the update operations."""
    return web.Response(status=ACCEPTED)


async def get_document(call: Call) -> web.StreamResponse:
    doc = call.emu.store.get_document(call.request.match_info["id"])
    return web.Response(body=doc.body(), content_type="application/json")


def _list_filters(call: Call) -> tuple[list[str], list[str], str | None, str]:
    query = call.request.query
    project_ids = query.getall("projectId", [])
    if any(not ids.is_object_id(p) for p in project_ids):
        raise bad_request(
            "Provided project identifier is invalid",
            "One of the given project identifier provided as projectId query parameter is invalid",
        )
    states = query.getall("state", [])
    unknown = [s for s in states if s not in STATE_SET]
    if unknown:
        raise bad_request("Invalid state", f"Unknown document state(s): {', '.join(unknown)}")
    sort = query.get("sort", "-createdAt")
    if sort.startswith(" "):  # an unencoded '+' arrives as a space
        sort = "+" + sort[1:]
    if sort not in SORT_KEYS:
        raise bad_request("Invalid sort definition", f"Cannot sort by {sort!r}")
    return project_ids, states, query.get("fileId"), sort


async def list_documents(call: Call) -> web.StreamResponse:
    offset, limit = parse_paging(call.request.query)
    project_ids, states, file_id, sort = _list_filters(call)
    docs = call.emu.store.list_documents(project_ids, states, file_id, sort)
    check_offset(offset, len(docs))
    page = [doc.body() for doc in docs[offset : offset + limit]]  # each cached, as for GET /documents/{id}
    return web.Response(body=envelope_bytes(page, offset, limit, len(docs)), content_type="application/json")


async def document_states(call: Call) -> web.StreamResponse:
    doc = call.emu.store.get_document(call.request.match_info["id"])
    return json_response(doc.states())


async def process_file(call: Call) -> web.StreamResponse:
    payload = call.json()
    if not isinstance(payload, dict):
        raise bad_request("Payload data is invalid", "The payload must be a JSON object")
    file_id, project_id = payload.get("fileId"), payload.get("projectId")
    if not isinstance(file_id, str) or not isinstance(project_id, str):
        raise bad_request("Payload data is invalid", "fileId and projectId are required strings")
    external_id = payload.get("externalId")
    if external_id is not None and not isinstance(external_id, str):
        raise bad_request("Payload data is invalid", "externalId must be a string")
    external_data = clean_external_data(payload["externalData"]) if "externalData" in payload else {}
    doc = call.emu.store.process_file(file_id, project_id, call.actor, external_id, external_data)
    return json_response({"documentId": doc.id, "fileId": file_id, "projectId": project_id}, ACCEPTED)


async def update_external_data(call: Call) -> web.StreamResponse:
    doc = call.emu.store.get_document(call.request.match_info["id"])
    data = clean_external_data(call.json())
    doc.external_data = data
    doc.touch(call.emu.clock.now(), call.actor)
    return _accepted()


async def provide_external_id(call: Call) -> web.StreamResponse:
    doc = call.emu.store.get_document(call.request.match_info["id"])
    value = call.text().strip()
    if not value:
        raise bad_request("Invalid external id", "The external id must not be empty")
    doc.external_id = value
    doc.touch(call.emu.clock.now(), call.actor)
    return _accepted()


async def provide_title(call: Call) -> web.StreamResponse:
    doc = call.emu.store.get_document(call.request.match_info["id"])
    title = call.text()
    if not title.strip():
        raise bad_request("Invalid title", "The title must not be empty")
    if len(title) > TITLE_MAX_LENGTH:
        raise bad_request("Invalid title", f"The title is longer than {TITLE_MAX_LENGTH} characters")
    doc.title = title
    doc.touch(call.emu.clock.now(), call.actor)
    return _accepted()


async def update_transfer(call: Call) -> web.StreamResponse:
    payload = call.json()
    if not isinstance(payload, dict) or not isinstance(payload.get("successful"), bool):
        raise bad_request("Payload data is invalid", "'successful' (boolean) is required")
    message = payload.get("message")
    if message is not None and not isinstance(message, str):
        raise bad_request("Payload data is invalid", "'message' must be a string")
    call.emu.store.report_transfer(call.request.match_info["id"], payload["successful"], message, call.actor)
    return _accepted()


OPERATIONS = (
    Operation(
        "Documents_processFileIntoDocument",
        "POST",
        "/documents/process-file",
        "documents.write",
        process_file,
    ),
    Operation("Documents_getList", "GET", "/documents", "documents.read", list_documents),
    Operation("Documents_getById", "GET", "/documents/{id}", "documents.read", get_document),
    Operation(
        "Documents_getDocumentStates", "GET", "/documents/{id}/states", "documents.read", document_states
    ),
    Operation(
        "Documents_updateTransferInformation",
        "POST",
        "/documents/{id}/transfer",
        "documents.write",
        update_transfer,
    ),
    Operation(
        "Documents_updateExternalData",
        "POST",
        "/documents/{id}/external-data",
        "documents.write",
        update_external_data,
    ),
    Operation(
        "Documents_provideExternalId",
        "POST",
        "/documents/{id}/external-id",
        "documents.write",
        provide_external_id,
    ),
    Operation("Documents_provideTitle", "POST", "/documents/{id}/title", "documents.write", provide_title),
)
