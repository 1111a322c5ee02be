"""Pydantic models of the vendor's request bodies (Hypatos API v2.15.0), checked before any HTTP call.

`tasks.validation` checks that a body is present and of the right kind (JSON object, text); these
models check its content, and `tasks.body_problems` turns what they find into messages, so a caller
hears every problem at once, named by field, instead of a terse 400/422 from the API (or, for external
data, keys the API drops without a word).  The value types (code lists, patterns) are in
`tasks.body_types`.

The models are written by hand from the spec's request schemas, one class per schema, so the
worker never needs the spec at run time; ``tests/tasks/test_bodies.py`` compares them with the spec.
Conventions, following the spec:

* ``extra="allow"`` everywhere (set once, on `SpecModel`): no request schema sets
  ``additionalProperties: false``, so a property the API gains later still reaches it.
* Validation is strict: JSON types are not coerced (``"true"`` is not a boolean, ``"1"`` not a number),
  because the body is sent on unchanged and the API would see the original value.
* An optional property is typed ``T | None = None``: it may be left out, but `SpecModel` refuses an
  explicit ``null`` (and leaves it out of the JSON schema) unless the property is declared
  ``Nullable[T]``, as the spec's ``nullable`` ISO code enums are.
"""

from __future__ import annotations

import functools
import types
import typing
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Annotated, Any, Literal, Self, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    ModelWrapValidatorHandler,
    RootModel,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, ErrorDetails, InitErrorDetails

from tasks.body_types import (
    NULLABLE,
    RULE_ERROR,
    AbbyyLanguage,
    CountryCode,
    CurrencyCode,
    CustomFields,
    Email,
    FlatValue,
    HexId,
    IsoDate,
    LanguageCode,
    NoSpaces,
    NotBlank,
    Nullable,
    Trimmed,
    rule_error,
)

MAX_EXTERNAL_DATA_KEYS = 20
MAX_EXTERNAL_DATA_KEY_LENGTH = 50
MAX_TITLE_LENGTH = 256

M = TypeVar("M", bound=BaseModel)


# --- models: shared behaviour ------------------------------------------------------------------


def _reraised(error: ErrorDetails) -> InitErrorDetails:
    """`error` as it can be raised again: pydantic's own types keep their type and context."""
    if error["type"] == RULE_ERROR:
        return {"type": rule_error(error["msg"]), "loc": error["loc"], "input": error["input"]}
    return {"type": error["type"], "loc": error["loc"], "input": error["input"], "ctx": error.get("ctx", {})}


def _about_object(data: object, messages: list[str]) -> list[InitErrorDetails]:
    """Errors about the whole object, one per message."""
    return [{"type": rule_error(message), "loc": (), "input": data} for message in messages]


def _validate_with(
    data: object, handler: Callable[[object], M], extra: list[InitErrorDetails], title: str
) -> M:
    """Run `handler`; raise its errors together with the `extra` ones found beforehand, so none of
    them waits for another round trip."""
    try:
        result = handler(data)
    except ValidationError as exc:
        if not extra:
            raise
        found = [_reraised(e) for e in exc.errors(include_url=False)]
        raise ValidationError.from_exception_data(title, extra + found) from None
    if extra:
        raise ValidationError.from_exception_data(title, extra)
    return result


def _admits_none(annotation: object) -> bool:
    """Whether `annotation` is a union with ``None`` (``T | None``)."""
    is_union = typing.get_origin(annotation) in (typing.Union, types.UnionType)
    return is_union and type(None) in typing.get_args(annotation)


def _without_none(annotation: object) -> Any:
    """``T`` from ``T | None`` (a union of several types stays a union)."""
    rest = tuple(arg for arg in typing.get_args(annotation) if arg is not type(None))
    return rest[0] if len(rest) == 1 else functools.reduce(lambda a, b: a | b, rest)


@functools.cache
def _refused_nulls(model: type[BaseModel]) -> Mapping[str, ErrorDetails]:
    """The properties of `model` typed ``T | None`` but not `Nullable`, by their JSON name, each with
    the error pydantic gives for ``null`` against ``T`` (so the message is the one a wrong type gets)."""
    refused: dict[str, ErrorDetails] = {}
    for name, field in model.model_fields.items():
        if NULLABLE in field.metadata or not _admits_none(field.annotation):
            continue
        try:
            TypeAdapter(_without_none(field.annotation)).validate_python(None, strict=True)
        except ValidationError as exc:
            refused[field.alias or name] = exc.errors(include_url=False)[0]
    return MappingProxyType(refused)


def _null_errors(model: type[BaseModel], data: dict[str, Any]) -> list[InitErrorDetails]:
    """An error for each property given as ``null`` that may be absent but not ``null``."""
    return [
        _reraised({**error, "loc": (key,)})
        for key, error in _refused_nulls(model).items()
        if key in data and data[key] is None
    ]


class SpecModel(BaseModel):
    """Base of every body model: strict JSON types, unknown properties kept, ``null`` only where the
    spec allows it, and whole-object rules reported with field errors."""

    model_config = ConfigDict(strict=True, extra="allow")

    @classmethod
    def object_errors(cls, data: dict[str, Any]) -> list[str]:
        """Rules that span properties (none by default); each string is a message about the object."""
        return []

    @model_validator(mode="wrap")
    @classmethod
    def _spec_rules(cls, data: object, handler: ModelWrapValidatorHandler[Self]) -> Self:
        if not isinstance(data, dict):
            return handler(data)
        extra = _about_object(data, cls.object_errors(data)) + _null_errors(cls, data)
        return _validate_with(data, handler, extra, cls.__name__)

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler, /
    ) -> JsonSchemaValue:
        """The schema says what validation does: a property that refuses ``null`` does not admit it."""
        schema = handler.resolve_ref_schema(handler(core_schema))
        properties = schema.get("properties", {})
        for name, field in cls.model_fields.items():
            if (field.alias or name) not in _refused_nulls(cls):
                continue
            for key in {name, field.alias or name} & properties.keys():
                properties[key] = _not_null(properties[key])
        return schema


def _not_null(prop: JsonSchemaValue) -> JsonSchemaValue:
    """A property schema ``{"anyOf": [T, {"type": "null"}], "default": null}`` as just ``T``."""
    alternatives = [alt for alt in prop.get("anyOf", []) if alt != {"type": "null"}]
    if len(alternatives) != 1:
        return prop
    rest = {
        key: value
        for key, value in prop.items()
        if key != "anyOf" and not (key == "default" and value is None)
    }
    return {**alternatives[0], **rest}


# --- documents ---------------------------------------------------------------------------------


def _external_data_errors(data: dict[Any, Any]) -> list[str]:
    """The limits the API enforces by silently dropping data; refused here with the key named."""
    messages: list[str] = []
    if len(data) > MAX_EXTERNAL_DATA_KEYS:
        messages.append(f"at most {MAX_EXTERNAL_DATA_KEYS} keys (got {len(data)})")
    for key in data:
        if isinstance(key, str) and len(key) > MAX_EXTERNAL_DATA_KEY_LENGTH:
            cut = key if len(key) <= 30 else key[:30] + "…"
            messages.append(f"key longer than {MAX_EXTERNAL_DATA_KEY_LENGTH} characters: {cut!r}")
    by_lower: dict[str, list[str]] = {}
    for key in data:
        by_lower.setdefault(str(key).lower(), []).append(str(key))
    for keys in by_lower.values():
        if len(keys) > 1:
            messages.append(f"keys are case-insensitive, these collide: {', '.join(map(repr, keys))}")
    return messages


class DocumentsUpdateExternalDataRequest(RootModel[dict[str, FlatValue]]):
    """spec ``DocumentsUpdateExternalDataRequest``: flat object, at most 20 keys of at most 50 characters.

    The spec's ``key1``/``key2`` properties are examples, not fixed names.
    """

    model_config = ConfigDict(
        strict=True,
        json_schema_extra={
            "maxProperties": MAX_EXTERNAL_DATA_KEYS,
            "propertyNames": {"maxLength": MAX_EXTERNAL_DATA_KEY_LENGTH},
        },
    )

    @model_validator(mode="wrap")
    @classmethod
    def _limits(cls, data: object, handler: ModelWrapValidatorHandler[Self]) -> Self:
        messages = _external_data_errors(data) if isinstance(data, dict) else []
        return _validate_with(data, handler, _about_object(data, messages), cls.__name__)


class DocumentsUpdateTransferRequest(SpecModel):
    """spec ``DocumentsUpdateTransferRequest``: the integration's report after pushing a document on."""

    successful: bool
    message: str | None = None


class ProcessFileRequest(SpecModel):
    """spec ``ProcessFileRequest``: turn an uploaded file into a document in a project."""

    fileId: str
    projectId: str
    externalId: str | None = None
    externalData: DocumentsUpdateExternalDataRequest | None = None


# --- projects ----------------------------------------------------------------------------------


class ProjectOCRAbbyy(SpecModel):
    """spec ``ProjectOCRAbbyy``."""

    engine: Literal["abbyy"]
    features: list[Literal["barcodes"]]
    languages: Annotated[list[AbbyyLanguage], Field(min_length=1, max_length=5)]


class ProjectOCRGoogle(SpecModel):
    """spec ``ProjectOCRGoogle``."""

    engine: Literal["google"]
    features: list[Literal["barcodes", "disableBoxFilter", "plainText"]]


class ProjectAllMembers(SpecModel):
    """spec ``ProjectAllMembers``; `allow` is the discriminator, so it must be present."""

    allow: Literal["all"]


class ProjectMembers(SpecModel):
    """spec ``ProjectMembers``; `allow` is the discriminator, so it must be present."""

    allow: Literal["members"]
    members: list[str] | None = None


class SchemaDataPoint(SpecModel):
    """spec ``Schema.dataPoints[]`` (an inline object)."""

    internalName: str | None = None
    displayName: str | None = None
    type: str | None = None
    normalization: list[dict[str, Any]] | None = None
    rules: dict[str, Any] | None = None


class SchemaFeatures(SpecModel):
    """spec ``Schema.features`` (an inline object)."""

    derivation: bool | None = None


class ProjectSchema(SpecModel):
    """spec ``Schema``: a project's data-point schema, given when creating a project."""

    version: int | None = None
    dataPoints: list[SchemaDataPoint] | None = None
    features: SchemaFeatures | None = None
    enrichment: dict[str, Any] | None = None
    normalization: dict[str, Any] | None = None
    validation: dict[str, Any] | None = None


class ProjectCreateRequest(SpecModel):
    """spec ``ProjectCreateRequest``."""

    name: Annotated[str, StringConstraints(min_length=1, max_length=60)]
    note: Annotated[str, StringConstraints(min_length=1, max_length=1000)] | None = None
    ocr: Annotated[ProjectOCRAbbyy | ProjectOCRGoogle, Field(discriminator="engine")]
    extractionModelId: str
    completion: Literal["automatic", "manual"] = "manual"
    duplicates: Literal["allow", "fail"] = "fail"
    members: Annotated[ProjectAllMembers | ProjectMembers, Field(discriminator="allow")]
    schema_: ProjectSchema | None = Field(None, alias="schema")


# --- enrichment: shared parts ------------------------------------------------------------------


class LanguagedText(SpecModel):
    """spec ``languagedText``."""

    text: str | None = None
    language: Nullable[LanguageCode] = None


class LanguagedTextWithValue(SpecModel):
    """spec ``languagedTextWithValue``."""

    value: str | None = None
    labels: list[LanguagedText] | None = None


class PaymentTerms(SpecModel):
    """spec ``paymentTerms``."""

    paymentTermKey: str | None = None
    descriptions: list[LanguagedText] | None = None


class AccountAssignment(SpecModel):
    """spec ``accountAssignment``."""

    externalGlAccountId: str | None = None
    externalCostCenterId: str | None = None
    glAccountCode: str | None = None
    costCenterCode: str | None = None
    quantity: float | None = None
    externalProjectId: str | None = None
    externalOrderId: str | None = None


class TaxCode(SpecModel):
    """spec ``taxCode``."""

    description: str | None = None
    code: str | None = None


class VatId(SpecModel):
    """spec ``vatId``."""

    id: str | None = None
    countryCode: Nullable[CountryCode] = None


class TaxId(SpecModel):
    """spec ``taxId``."""

    id: str | None = None
    type: str | None = None


class BankAccount(SpecModel):
    """spec ``bankAccount``."""

    externalId: NoSpaces
    countryCode: Nullable[CountryCode] = None
    bankAccountNumber: str | None = None
    bankAccountHolder: str | None = None
    iban: str | None = None
    bic: str | None = None
    bankName: str | None = None
    bankStreet: str | None = None
    bankPostcode: str | None = None
    bankCity: str | None = None
    isActive: bool | None = None


class DefaultAccountAssignment(SpecModel):
    """spec ``defaultAssignments.defaultAccountAssignment`` (an inline object)."""

    glAccountCode: str | None = None
    costCenterCode: str | None = None
    externalApproverId: str | None = None
    externalProjectId: str | None = None
    externalOrderId: str | None = None


class DefaultAssignments(SpecModel):
    """spec ``defaultAssignments``: the part suppliers and subsidiaries share (``allOf``)."""

    defaultAccountAssignment: DefaultAccountAssignment | None = None


class WithholdingTaxInfo(SpecModel):
    """spec ``withholdingTaxInfo``."""

    description: str | None = None
    key: str | None = None


class Subsidiary(DefaultAssignments):
    """spec ``subsidiary`` (``allOf`` defaultAssignments and its own properties)."""

    externalCompanyId: str | None = None
    paymentTerms: PaymentTerms | None = None
    blockedForPosting: bool | None = None
    blockedForPayment: bool | None = None
    enabledForAutoPosting: bool | None = None
    defaultGlAccountCode: str | None = None  # deprecated in the spec, still accepted
    withholdingTaxInfo: list[WithholdingTaxInfo] | None = None


# --- enrichment: the eight insert bodies and their parts ---------------------------------------


class Approver(SpecModel):
    """spec ``approver`` (insertApprover)."""

    externalId: NoSpaces
    companyAssignment: list[str] | None = None
    isActive: bool | None = None
    firstName: str | None = None
    lastName: str | None = None
    email: Email | None = None
    phoneNumber: str | None = None


class Company(SpecModel):
    """spec ``company`` (insertCompany)."""

    externalId: NoSpaces
    name: NotBlank
    street: str | None = None
    addressAdditional: str | None = None
    postcode: str | None = None
    city: str | None = None
    state: str | None = None
    countryCode: Nullable[CountryCode] = None
    vatIds: list[VatId] | None = None
    taxIds: list[TaxId] | None = None
    customFields: CustomFields | None = None


class _CodedRecord(SpecModel):
    """The shape the spec's ``costCenter`` and ``glAccount`` share, field for field."""

    externalId: NoSpaces
    code: Trimmed
    companyAssignment: list[str] | None = None
    type: LanguagedTextWithValue | None = None
    category: LanguagedTextWithValue | None = None
    label: list[LanguagedText] | None = None
    shortLabel: list[LanguagedText] | None = None


class CostCenter(_CodedRecord):
    """spec ``costCenter`` (insertCostCenter)."""


class Customer(SpecModel):
    """spec ``customer`` (insertCustomer)."""

    externalId: NoSpaces
    name: NotBlank
    street: str | None = None
    addressAdditional: str | None = None
    postcode: str | None = None
    city: str | None = None
    countryCode: Nullable[CountryCode] = None
    vatIds: list[VatId] | None = None
    taxIds: list[TaxId] | None = None
    blockedForPosting: bool | None = None
    blockedForPayment: bool | None = None
    customerSubsidiaries: list[Subsidiary] | None = None
    customerBankAccounts: list[BankAccount] | None = None
    customFields: CustomFields | None = None


class GlAccount(_CodedRecord):
    """spec ``glAccount`` (insertGLAccount)."""


class Document(SpecModel):
    """spec ``document``: a reference from an invoice to a document in Hypatos Studio."""

    id: HexId
    type: NoSpaces | None = None


class InvoiceLine(SpecModel):
    """spec ``invoiceLine`` (no property is required; ``externalId`` identifies the line)."""

    externalId: NoSpaces | None = None
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
    customFields: CustomFields | None = None


class WithholdingTax(SpecModel):
    """spec ``withholdingTax``."""

    key: str | None = None
    baseAmount: float | None = None
    amount: float | None = None
    currency: Nullable[CurrencyCode] = None


class Invoice(SpecModel):
    """spec ``invoice`` (insertInvoice); its description also asks for documentId or documents."""

    externalId: NoSpaces
    documentId: HexId | None = None
    documents: Annotated[list[Document], Field(min_length=1)] | None = None
    supplierInvoiceNumber: str | None = None
    invoiceNumber: str | None = None
    externalCompanyId: str | None = None
    externalSupplierId: str | None = None
    externalBankAccountId: str | None = None
    fiscalYearLabel: str | None = None
    issuedDate: IsoDate | None = None
    receivedDate: IsoDate | None = None
    postingDate: IsoDate | None = None
    isCanceled: bool | None = None
    relatedInvoice: str | None = None
    currency: Nullable[CurrencyCode] = None
    totalNetAmount: float | None = None
    totalFreightCharges: float | None = None
    totalOtherCharges: float | None = None
    totalTaxAmount: float | None = None
    totalGrossAmount: float | None = None
    paymentTerms: PaymentTerms | None = None
    externalApproverId: str | None = None
    customFields: CustomFields | None = None
    headerText: str | None = None
    type: str | None = None
    invoiceLines: Annotated[list[InvoiceLine], Field(min_length=1)]
    withholdingTax: list[WithholdingTax] | None = None

    @classmethod
    def object_errors(cls, data: dict[str, Any]) -> list[str]:
        """The spec's description: "one property of [documentId, documents] is required"."""
        if "documentId" not in data and "documents" not in data:
            return ["needs documentId or documents (the invoice's document in Hypatos)"]
        return []


class Material(SpecModel):
    """spec ``purchaseOrderLine.material`` (an inline object)."""

    description: str | None = None
    externalId: NoSpaces | None = None
    supplierNumber: str | None = None
    type: str | None = None
    group: str | None = None


class PurchaseOrderLine(SpecModel):
    """spec ``purchaseOrderLine``."""

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
    customFields: CustomFields | None = None


class PurchaseOrder(SpecModel):
    """spec ``purchaseOrder`` (insertPurchaseOrder)."""

    externalId: NoSpaces
    createdDate: IsoDate | None = None
    fiscalYearLabel: str | None = None
    language: Nullable[LanguageCode] = None
    externalCompanyId: str | None = None
    type: str | None = None
    externalSupplierId: str | None = None
    status: str | None = None
    currency: Nullable[CurrencyCode] = None
    totalNetAmount: float | None = None
    totalFreightCharges: float | None = None
    totalOtherCharges: float | None = None
    totalTaxAmount: float | None = None
    totalGrossAmount: float | None = None
    paymentTerms: PaymentTerms | None = None
    customFields: CustomFields | None = None
    purchaseOrderLines: list[PurchaseOrderLine] | None = None


class Supplier(DefaultAssignments):
    """spec ``supplier`` (insertSupplier; ``allOf`` defaultAssignments and its own properties)."""

    externalId: NoSpaces
    name: NotBlank
    street: str | None = None
    addressAdditional: str | None = None
    postcode: str | None = None
    city: str | None = None
    state: str | None = None
    countryCode: Nullable[CountryCode] = None
    vatIds: list[VatId] | None = None
    taxIds: list[TaxId] | None = None
    blockedForPosting: bool | None = None
    blockedForPayment: bool | None = None
    defaultGlAccountCode: str | None = None  # deprecated in the spec, still accepted
    supplierSubsidiaries: list[Subsidiary] | None = None
    supplierBankAccounts: list[BankAccount] | None = None
    customFields: CustomFields | None = None


#: The body model of every operation that sends JSON, by operation name.
BODY_MODELS: Mapping[str, type[BaseModel]] = MappingProxyType(
    {
        "documentUpdateExternalData": DocumentsUpdateExternalDataRequest,
        "documentsUpdateTransfer": DocumentsUpdateTransferRequest,
        "processFileIntoDocument": ProcessFileRequest,
        "projectsCreate": ProjectCreateRequest,
        "insertApprover": Approver,
        "insertCompany": Company,
        "insertCostCenter": CostCenter,
        "insertCustomer": Customer,
        "insertGLAccount": GlAccount,
        "insertInvoice": Invoice,
        "insertPurchaseOrder": PurchaseOrder,
        "insertSupplier": Supplier,
    }
)


# --- text bodies -------------------------------------------------------------------------------


def _external_id_problems(body: str) -> list[str]:
    """An external id links the document to the caller's system: an empty one links nothing."""
    return [] if body.strip() else ["must not be empty"]


def _title_problems(body: str) -> list[str]:
    """spec ``DocumentsUpdateTitleRequest``: maxLength 256."""
    if len(body) > MAX_TITLE_LENGTH:
        return [f"must be at most {MAX_TITLE_LENGTH} characters (got {len(body)})"]
    return []


#: The check of every operation that sends text, by operation name.
TEXT_CHECKS: Mapping[str, Callable[[str], list[str]]] = MappingProxyType(
    {"documentsUpdateExternalId": _external_id_problems, "documentsUpdateTitle": _title_problems}
)
