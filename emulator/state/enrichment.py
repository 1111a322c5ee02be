"""Enrichment master data: upserts keyed by the caller's externalId, and deletes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from emulator import ids
from emulator.errors import enrichment_not_found

KINDS: tuple[str, ...] = (
    "approvers",
    "companies",
    "cost-centers",
    "customers",
    "gl-accounts",
    "invoices",
    "purchase-orders",
    "suppliers",
)
LINE_KEYS = {"invoices": "invoiceLines", "purchase-orders": "purchaseOrderLines"}


@dataclass
class Record:
    id: str
    external_id: str
    company_id: str | None
    payload: dict[str, Any]
    deleted: bool = False
    deleted_lines: list[str] = field(default_factory=list)

    def view(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "externalId": self.external_id,
            "companyId": self.company_id,
            "deleted": self.deleted,
            "deletedLines": list(self.deleted_lines),
            "payload": self.payload,
        }


def _line_matches(line: dict[str, Any], kind: str, position: int, line_number: str) -> bool:
    """Purchase-order lines are named by purchaseOrderLineNumber; invoice lines by externalId or position."""
    if kind == "purchase-orders":
        return str(line.get("purchaseOrderLineNumber")) == line_number
    if line.get("externalId") is not None:
        return str(line["externalId"]) == line_number
    return line_number.isdigit() and int(line_number) == position


class Enrichment:
    """Records per kind, keyed by (X-Hy-Meta-Internal-Company-Id, externalId)."""

    def __init__(self) -> None:
        self.records: dict[str, dict[tuple[str | None, str], Record]] = {kind: {} for kind in KINDS}

    def upsert(self, kind: str, payload: dict[str, Any], company_id: str | None) -> Record:
        """Full replace; the same externalId keeps its id, even after a delete."""
        key = (company_id, str(payload["externalId"]))
        record = self.records[kind].get(key)
        if record is None:
            record = Record(ids.enrichment_id(), key[1], company_id, payload)
            self.records[kind][key] = record
        else:
            record.payload, record.deleted, record.deleted_lines = payload, False, []
        return record

    def delete(self, kind: str, external_id: str, company_id: str | None, line_number: str | None) -> Record:
        record = self.records[kind].get((company_id, external_id))
        if record is None or record.deleted:
            raise enrichment_not_found()
        if line_number is None:
            record.deleted = True
            return record
        if line_number in record.deleted_lines:
            raise enrichment_not_found()
        lines = record.payload.get(LINE_KEYS[kind]) or []
        for position, line in enumerate(lines, 1):
            if _line_matches(line, kind, position, line_number):
                record.deleted_lines.append(line_number)
                return record
        raise enrichment_not_found()

    def dump(self, kind: str) -> list[dict[str, Any]]:
        return [record.view() for record in self.records[kind].values()]
