"""Companies (read only) and the merged email content of a document."""

from __future__ import annotations

from aiohttp import web

from emulator.errors import json_response
from emulator.pdf import email_pdf
from emulator.routes.base import Call, Operation
from emulator.state.paging import envelope


async def get_company(call: Call) -> web.StreamResponse:
    return json_response(call.emu.store.get_company(call.request.match_info["id"]))


async def list_companies(call: Call) -> web.StreamResponse:
    """No paging yet, as the spec notes: everything in one envelope."""
    companies = list(call.emu.store.companies.values())
    return json_response(envelope(companies, 0, len(companies), len(companies)))


async def email_content(call: Call) -> web.StreamResponse:
    """The email a document arrived with, merged into one PDF (id is the document id)."""
    doc = call.emu.store.get_document(call.request.match_info["id"])
    return web.Response(body=email_pdf(doc.id, doc.title), content_type="application/pdf")


OPERATIONS = (
    Operation("Companies_getById", "GET", "/companies/{id}", "companies.read", get_company),
    Operation("Companies_list", "GET", "/companies", "companies.read", list_companies),
    Operation("Emails_getMergedContentById", "GET", "/emails/{id}/content", "emails.read", email_content),
)
