"""The catalog: the 33 Partner operations, each declared once, consistent with the API notes."""

from __future__ import annotations

import pytest

from tasks.catalog import CATALOG, In, Operation, _check

BOOMI_GET = {
    "companiesGetById",
    "companiesList",
    "documentsGetById",
    "documentsList",
    "emailsContentGetByDocumentId",
    "projectsGetById",
    "projectsList",
    "retrieveDocumentStates",
    "retrieveFile",
    "schemasGetByProjectId",
}
BOOMI_DELETE = {
    f"delete{k}"
    for k in (
        "Approver",
        "Company",
        "CostCenter",
        "Customer",
        "GLAccount",
        "Invoice",
        "PurchaseOrder",
        "Supplier",
    )
}


def test_the_catalog_has_the_33_partner_operations() -> None:
    assert len(CATALOG) == 33
    by_method: dict[str, set[str]] = {}
    for operation in CATALOG.values():
        by_method.setdefault(operation.method, set()).add(operation.name)
    assert by_method["GET"] == BOOMI_GET
    assert by_method["DELETE"] == BOOMI_DELETE
    assert len(by_method["POST"]) == 15  # Boomi's 14 POST objects plus projectsCreate
    assert "projectsCreate" in by_method["POST"]


def test_every_scope_follows_resource_dot_action() -> None:
    for operation in CATALOG.values():
        _, action = operation.scope.split(".")
        assert action in {"read", "write", "delete"}, operation.name


def test_creating_operations_are_flagged() -> None:
    assert {o.name for o in CATALOG.values() if o.creates} == {
        "uploadFile",
        "processFileIntoDocument",
        "projectsCreate",
    }


def test_given_a_duplicate_declaration_then_the_catalog_refuses_it() -> None:
    op = Operation("x", "GET", "/x", "documents.read")
    with pytest.raises(ValueError, match="declared twice"):
        _check([op, op])


def test_given_a_path_placeholder_without_its_parameter_then_the_catalog_refuses_it() -> None:
    with pytest.raises(ValueError, match="path"):
        _check([Operation("x", "GET", "/x/{id}", "documents.read")])


def test_delete_invoice_and_purchase_order_take_a_line_number() -> None:
    for name in ("deleteInvoice", "deletePurchaseOrder"):
        assert "lineNumber" in {p.name for p in CATALOG[name].params if p.location is In.QUERY}
    assert "lineNumber" not in {p.name for p in CATALOG["deleteSupplier"].params}
