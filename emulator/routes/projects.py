"""Projects: create, get, list (search, sort, paging), schema."""

from __future__ import annotations

from aiohttp import web

from emulator.errors import ApiError, json_response
from emulator.routes.base import Call, Operation
from emulator.state.paging import check_offset, envelope, parse_paging

PROJECT_SORTS = {"-createdAt": True, "+createdAt": False}
VALIDATION = 422
"""The projects list documents 422 (not 400) for invalid query parameters."""


def _invalid_payload(detail: str) -> ApiError:
    return ApiError(400, "Payload data is invalid", detail)


async def create_project(call: Call) -> web.StreamResponse:
    project = call.emu.store.create_project(call.json(_invalid_payload), call.actor)
    return json_response(project, 201)


async def get_project(call: Call) -> web.StreamResponse:
    return json_response(call.emu.store.get_project(call.request.match_info["id"]))


async def list_projects(call: Call) -> web.StreamResponse:
    query = call.request.query
    offset, limit = parse_paging(query, VALIDATION)
    sort = query.get("sort", "-createdAt")
    if sort.startswith(" "):  # an unencoded '+' arrives as a space
        sort = "+" + sort[1:]
    if sort not in PROJECT_SORTS:
        raise ApiError(VALIDATION, "Request validation error", f"Cannot sort by {sort!r}")
    projects = call.emu.store.list_projects(query.get("search"), PROJECT_SORTS[sort])
    check_offset(offset, len(projects), VALIDATION)
    return json_response(envelope(projects[offset : offset + limit], offset, limit, len(projects)))


async def project_schema(call: Call) -> web.StreamResponse:
    return json_response(call.emu.store.project_schema(call.request.match_info["id"]))


OPERATIONS = (
    Operation("Projects_createProject", "POST", "/projects", "projects.write", create_project),
    Operation("Projects_listForGivenSearchCriteria", "GET", "/projects", "projects.read", list_projects),
    Operation("Projects_getById", "GET", "/projects/{id}", "projects.read", get_project),
    Operation(
        "Projects_getSchemaByProjectId", "GET", "/projects/{id}/schema", "projects.read", project_schema
    ),
)
