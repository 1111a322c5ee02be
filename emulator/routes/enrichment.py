"""Enrichment: upserts keyed by externalId for eight kinds, and (line) deletes."""

from __future__ import annotations

from aiohttp import web
from pydantic import ValidationError

from emulator.errors import json_response, validation_error
from emulator.headers import header_text
from emulator.routes.base import Call, Handler, Operation
from emulator.state.enrichment_models import validate

COMPANY_HEADER = "X-Hy-Meta-Internal-Company-Id"


def _company(call: Call) -> str | None:
    value = call.request.headers.get(COMPANY_HEADER)
    return None if value is None else header_text(value)


# kind -> (insert operationId, delete operationId)
OPERATION_IDS = {
    "invoices": ("Enrichment_insertInvoiceIncludingInvoiceLines", "Enrichment_markInvoiceDeleted"),
    "companies": ("Enrichment_addCompanyData", "Enrichment_markCompanyDeleted"),
    "suppliers": ("Enrichment_insertSupplierIncludingSubsidiaries", "Enrichment_markSupplierDeleted"),
    "purchase-orders": ("Enrichment_insertPurchaseOrder", "Enrichment_markPurchaseOrderDeleted"),
    "gl-accounts": ("Enrichment_insertGlAccount", "Enrichment_markGlAccountDeleted"),
    "cost-centers": ("Enrichment_insertCostCenter", "Enrichment_markCostCenterDeleted"),
    "approvers": ("Enrichment_insertApproverRecord", "Enrichment_markApproverDeleted"),
    "customers": ("Enrichment_insertCustomer", "Enrichment_markCustomerAsDeleted"),
}
WITH_LINES = frozenset({"invoices", "purchase-orders"})


def _errors(exc: ValidationError) -> list[dict[str, object]]:
    """FastAPI-style items; loc entries become strings as the spec's validationError schema says."""
    return [
        {"loc": ["body", *(str(part) for part in err["loc"])], "msg": err["msg"], "type": err["type"]}
        for err in exc.errors(include_url=False)
    ]


def _inserter(kind: str) -> Handler:
    async def insert(call: Call) -> web.StreamResponse:
        try:
            payload = validate(kind, call.body)
        except ValidationError as exc:
            raise validation_error(_errors(exc)) from None
        record = call.emu.store.enrichment.upsert(kind, payload, _company(call))
        return json_response({"id": record.id})

    return insert


def _deleter(kind: str) -> Handler:
    async def delete(call: Call) -> web.StreamResponse:
        line = call.request.query.get("lineNumber") if kind in WITH_LINES else None
        call.emu.store.enrichment.delete(kind, call.request.match_info["externalId"], _company(call), line)
        return web.Response(status=204)

    return delete


OPERATIONS = tuple(
    op
    for kind, (insert_id, delete_id) in OPERATION_IDS.items()
    for op in (
        Operation(insert_id, "POST", f"/enrichment/{kind}", "enrichment.write", _inserter(kind)),
        Operation(
            delete_id, "DELETE", f"/enrichment/{kind}/{{externalId}}", "enrichment.delete", _deleter(kind)
        ),
    )
)
