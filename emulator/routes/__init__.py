"""The operation table: every path and method of the vendor spec, with its operationId and scope."""

from __future__ import annotations

from aiohttp import web

from emulator.routes import companies, documents, enrichment, files, projects
from emulator.routes.base import Call, Operation
from emulator.routes.token import TOKEN_OPERATION_ID


async def _never(call: Call) -> web.StreamResponse:  # pragma: no cover - the core answers token requests
    raise AssertionError("token endpoint is dispatched by the core")


TOKEN = Operation(TOKEN_OPERATION_ID, "POST", "/auth/token", None, _never)


OPERATIONS: tuple[Operation, ...] = (
    TOKEN,
    *files.OPERATIONS,
    *documents.OPERATIONS,
    *enrichment.OPERATIONS,
    *companies.OPERATIONS,
    *projects.OPERATIONS,
)
