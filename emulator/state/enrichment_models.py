"""Validation models for the eight enrichment kinds, after the vendor spec's schemas.

The enrichment service answers invalid payloads with FastAPI's 422 body; pydantic gives the same
`loc`/`msg`/`type` triples. Code lists (ISO 4217/3166/639) are checked by shape, not by full list.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

NoSpace = Annotated[str, Field(pattern=r"^\S+$")]
Code = Annotated[str, Field(pattern=r"^\S([\S ]*\S)?$")]
Name = Annotated[str, Field(pattern=r"^[\S ]*\S[\S ]*$")]
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$")] | None
Country = Annotated[str, Field(pattern=r"^[A-Z]{2}$")] | None
Language = Annotated[str, Field(pattern=r"^[a-z]{2}$")] | None
Email = Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")]
ObjectId = Annotated[str, Field(pattern=r"^[0-9a-fA-F]{24}$")]


class _Model(BaseModel):
    """Unknown properties are kept: the schemas do not forbid them."""

    model_config = ConfigDict(extra="allow", strict=True)


class LanguagedText(_Model):
    text: str | None = None
    language: Language = None


class LanguagedTextWithValue(_Model):
    value: str | None = None
    labels: list[LanguagedText] | None = None


class PaymentTerms(_Model):
    paymentTermKey: str | None = None
    descriptions: list[LanguagedText] | None = None


class TaxCode(_Model):
    description: str | None = None
    code: str | None = None


class AccountAssignment(_Model):
    externalGlAccountId: str | None = None
    externalCostCenterId: str | None = None
    glAccountCode: str | None = None
    costCenterCode: str | None = None
    quantity: float | None = None
    externalProjectId: str | None = None
    externalOrderId: str | None = None


class DocumentRef(_Model):
    id: ObjectId
    type: NoSpace | None = None


class InvoiceLine(_Model):
    externalId: NoSpace | None = None
    externalCompanyId: str | None = None
    accountAssignments: list[AccountAssignment] | None = None
    type: str | None = None
    quantity: float | None = None
    netAmount: float | None = None
    totalTaxAmount: float | None = None
    grossAmount: float | None = None
    unitOfMeasure: str | None = None
    unitPrice: float | None = None
    taxCode: TaxCode | None = None
    taxJurisdictionCode: str | None = None
    itemText: str | None = None
    externalPurchaseOrderId: str | None = None
    purchaseOrderLineNumber: str | None = None
    centralBankIndicator: str | None = None
    customFields: dict[str, str] | None = None


class WithholdingTax(_Model):
    key: str | None = None
    baseAmount: float | None = None
    amount: float | None = None
    currency: Currency = None


class Invoice(_Model):
    externalId: NoSpace
    documentId: ObjectId | None = None
    documents: Annotated[list[DocumentRef], Field(min_length=1)] | None = None
    supplierInvoiceNumber: str | None = None
    invoiceNumber: str | None = None
    externalCompanyId: str | None = None
    externalSupplierId: str | None = None
    externalBankAccountId: str | None = None
    fiscalYearLabel: str | None = None
    issuedDate: dt.date | None = None
    receivedDate: dt.date | None = None
    postingDate: dt.date | None = None
    isCanceled: bool | None = None
    relatedInvoice: str | None = None
    currency: Currency = None
    totalNetAmount: float | None = None
    totalFreightCharges: float | None = None
    totalOtherCharges: float | None = None
    totalTaxAmount: float | None = None
    totalGrossAmount: float | None = None
    paymentTerms: PaymentTerms | None = None
    externalApproverId: str | None = None
    customFields: dict[str, str] | None = None
    headerText: str | None = None
    type: str | None = None
    invoiceLines: Annotated[list[InvoiceLine], Field(min_length=1)]
    withholdingTax: list[WithholdingTax] | None = None

    @model_validator(mode="after")
    def _document_reference(self) -> Invoice:
        """The schema's description: one of documentId or documents is required."""
        if self.documentId is None and self.documents is None:
            raise ValueError("one of documentId or documents is required")
        return self


class Material(_Model):
    description: str | None = None
    externalId: NoSpace | None = None
    supplierNumber: str | None = None
    type: str | None = None
    group: str | None = None


class PurchaseOrderLine(_Model):
    purchaseOrderLineNumber: str
    externalCompanyId: str | None = None
    accountAssignments: list[AccountAssignment] | None = None
    type: str | None = None
    quantity: float | None = None
    status: str | None = None
    netAmount: float | None = None
    totalTaxAmount: float | None = None
    grossAmount: float | None = None
    unitOfMeasure: str | None = None
    unitPrice: float | None = None
    taxCode: TaxCode | None = None
    itemText: str | None = None
    material: Material | None = None
    customFields: dict[str, str] | None = None


class PurchaseOrder(_Model):
    externalId: NoSpace
    createdDate: dt.date | None = None
    fiscalYearLabel: str | None = None
    language: Language = None
    externalCompanyId: str | None = None
    type: str | None = None
    externalSupplierId: str | None = None
    status: str | None = None
    currency: Currency = None
    totalNetAmount: float | None = None
    totalFreightCharges: float | None = None
    totalOtherCharges: float | None = None
    totalTaxAmount: float | None = None
    totalGrossAmount: float | None = None
    paymentTerms: PaymentTerms | None = None
    customFields: dict[str, str] | None = None
    purchaseOrderLines: list[PurchaseOrderLine] | None = None


class _Ledger(_Model):
    externalId: NoSpace
    code: Code
    companyAssignment: list[str] | None = None
    type: LanguagedTextWithValue | None = None
    category: LanguagedTextWithValue | None = None
    label: list[LanguagedText] | None = None
    shortLabel: list[LanguagedText] | None = None


class GlAccount(_Ledger):
    pass


class CostCenter(_Ledger):
    pass


class Approver(_Model):
    externalId: NoSpace
    companyAssignment: list[str] | None = None
    isActive: bool | None = None
    firstName: str | None = None
    lastName: str | None = None
    email: Email | None = None
    phoneNumber: str | None = None


class VatId(_Model):
    id: str | None = None
    countryCode: Country = None


class TaxId(_Model):
    id: str | None = None
    type: str | None = None


class BankAccount(_Model):
    externalId: NoSpace
    countryCode: Country = None
    bankAccountNumber: str | None = None
    bankAccountHolder: str | None = None
    iban: str | None = None
    bic: str | None = None
    bankName: str | None = None
    bankStreet: str | None = None
    bankPostcode: str | None = None
    bankCity: str | None = None
    isActive: bool | None = None


class DefaultAccountAssignment(_Model):
    glAccountCode: str | None = None
    costCenterCode: str | None = None
    externalApproverId: str | None = None
    externalProjectId: str | None = None
    externalOrderId: str | None = None


class WithholdingTaxInfo(_Model):
    description: str | None = None
    key: str | None = None


class Subsidiary(_Model):
    defaultAccountAssignment: DefaultAccountAssignment | None = None
    externalCompanyId: str | None = None
    paymentTerms: PaymentTerms | None = None
    blockedForPosting: bool | None = None
    blockedForPayment: bool | None = None
    enabledForAutoPosting: bool | None = None
    defaultGlAccountCode: str | None = None
    withholdingTaxInfo: list[WithholdingTaxInfo] | None = None


class _Party(_Model):
    externalId: NoSpace
    name: Name
    street: str | None = None
    addressAdditional: str | None = None
    postcode: str | None = None
    city: str | None = None
    countryCode: Country = None
    vatIds: list[VatId] | None = None
    taxIds: list[TaxId] | None = None
    customFields: dict[str, str] | None = None


class Company(_Party):
    state: str | None = None


class Customer(_Party):
    blockedForPosting: bool | None = None
    blockedForPayment: bool | None = None
    customerSubsidiaries: list[Subsidiary] | None = None
    customerBankAccounts: list[BankAccount] | None = None


class Supplier(_Party):
    state: str | None = None
    defaultAccountAssignment: DefaultAccountAssignment | None = None
    blockedForPosting: bool | None = None
    blockedForPayment: bool | None = None
    defaultGlAccountCode: str | None = None
    supplierSubsidiaries: list[Subsidiary] | None = None
    supplierBankAccounts: list[BankAccount] | None = None


MODELS: dict[str, type[_Model]] = {
    "approvers": Approver,
    "companies": Company,
    "cost-centers": CostCenter,
    "customers": Customer,
    "gl-accounts": GlAccount,
    "invoices": Invoice,
    "purchase-orders": PurchaseOrder,
    "suppliers": Supplier,
}


def validate(kind: str, body: bytes) -> dict[str, Any]:
    """Validate a JSON payload; raises pydantic.ValidationError. Returns the payload as sent."""
    MODELS[kind].model_validate_json(body)
    return json.loads(body)
