"""Request bodies checked against the vendor contract (Hypatos API v2.15.0), before any HTTP call.

`tasks.validation` checks that a body is present and of the right kind (JSON object, text); this
module checks its content, so a caller hears every problem at once, named by field, instead of a
terse 400/422 from the API (or, for external data, keys the API drops without a word).

The models are written by hand from the spec's request schemas, one class per schema, so the
worker never needs the spec at run time; ``tests/tasks/test_bodies.py`` compares them with the spec.
Conventions, following the spec:

* ``extra="allow"`` everywhere (set once, on `SpecModel`): no request schema sets
  ``additionalProperties: false``, so a property the API gains later still reaches it.
* Validation is strict: JSON types are not coerced (``"true"`` is not a boolean, ``"1"`` not a number),
  because the body is sent on unchanged and the API would see the original value.
* An optional property is declared ``name: T = None``: it may be left out, but an explicit ``null``
  is refused unless the spec marks the property nullable (the ISO code enums); those are ``T | None``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import date
from types import MappingProxyType
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    PlainValidator,
    RootModel,
    StringConstraints,
    ValidationError,
    WithJsonSchema,
    model_validator,
)
from pydantic_core import ErrorDetails, InitErrorDetails, PydanticCustomError

Problems = list[dict[str, str]]

MAX_EXTERNAL_DATA_KEYS = 20
MAX_EXTERNAL_DATA_KEY_LENGTH = 50
MAX_TITLE_LENGTH = 256


def _error(message: str) -> PydanticCustomError:
    """A validation error whose message is shown to the caller as written."""
    return PydanticCustomError("body_rule", "{message}", {"message": message})


def _show(value: object) -> str:
    """A short, JSON-flavoured rendering of an offending value for messages."""
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    text = repr(value)
    return text if len(text) <= 40 else text[:39] + "…"


# --- string rules the spec states with `pattern` and `format` ----------------------------------

#: What each spec pattern means, in words, for messages.
PATTERN_RULES: Mapping[str, str] = MappingProxyType(
    {
        r"^\S+$": "must not be empty or contain whitespace",
        r"^[\S ]*\S[\S ]*$": "must not be blank or contain tabs or line breaks",
        r"^\S([\S ]*\S)?$": "must not be empty, start or end with a space, or contain tabs or line breaks",
        r"^[0-9a-fA-F]{24}$": "must be 24 hexadecimal characters",
    }
)

NoSpaces = Annotated[str, StringConstraints(pattern=r"^\S+$")]
NotBlank = Annotated[str, StringConstraints(pattern=r"^[\S ]*\S[\S ]*$")]
Trimmed = Annotated[str, StringConstraints(pattern=r"^\S([\S ]*\S)?$")]
HexId = Annotated[str, StringConstraints(pattern=r"^[0-9a-fA-F]{24}$")]

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


def _check_date(value: str) -> str:
    """OpenAPI ``format: date`` is an RFC 3339 full-date: YYYY-MM-DD, and a real calendar day."""
    try:
        if _DATE.fullmatch(value):
            date.fromisoformat(value)
            return value
    except ValueError:
        pass
    raise _error(f"must be a date as YYYY-MM-DD (got {_show(value)})")


def _check_email(value: str) -> str:
    """A plausibility check for ``format: email``: something@domain.tld, no whitespace."""
    if not _EMAIL.fullmatch(value):
        raise _error(f"must be an email address (got {_show(value)})")
    return value


IsoDate = Annotated[str, AfterValidator(_check_date), WithJsonSchema({"type": "string", "format": "date"})]
Email = Annotated[str, AfterValidator(_check_email), WithJsonSchema({"type": "string", "format": "email"})]


# --- the spec's long enums (ISO codes, OCR languages), checked with a readable message ---------


def _words(text: str) -> tuple[str, ...]:
    """The whitespace-separated words of `text`, in order: long code lists stay readable and diffable."""
    return tuple(text.split())


CURRENCY_CODES = _words(
    """
    AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BOV BRL BSD BTN BWP BYN
    BZD CAD CDF CHE CHF CHW CLF CLP CNY COP COU CRC CUC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD
    FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HRK HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS
    KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN
    MXV MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR
    SDG SEK SGD SHP SLE SLL SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS UAH UGX USD
    USN UYI UYU UYW UZS VED VES VND VUV WST XAF XAG XAU XBA XBB XBC XBD XCD XDR XOF XPD XPF XPT XSU XTS
    XUA XXX YER ZAR ZMW ZWL
    """
)
COUNTRY_CODES = _words(
    """
    AF AX AL DZ AS AD AO AI AQ AG AR AM AW AU AT AZ BS BH BD BB BY BE BZ BJ BM BT BO BQ BA BW BV BR IO
    BN BG BF BI KH CM CA CV KY CF TD CL CN CX CC CO KM CG CD CK CR CI HR CU CW CY CZ DK DJ DM DO EC EG
    SV GQ ER EE ET FK FO FJ FI FR GF PF TF GA GM GE DE GH GI GR GL GD GP GU GT GG GN GW GY HT HM VA HN
    HK HU IS IN ID IR IQ IE IM IL IT JM JP JE JO KZ KE KI KP KR KW KG LA LV LB LS LR LY LI LT LU MO MK
    MG MW MY MV ML MT MH MQ MR MU YT MX FM MD MC MN ME MS MA MZ MM NA NR NP NL NC NZ NI NE NG NU NF MP
    NO OM PK PW PS PA PG PY PE PH PN PL PT PR QA RE RO RU RW BL SH KN LC MF PM VC WS SM ST SA SN RS SC
    SL SG SX SK SI SB SO ZA GS SS ES LK SD SR SJ SZ SE CH SY TW TJ TZ TH TL TG TK TO TT TN TR TM TC TV
    UG UA AE GB US UM UY UZ VU VE VN VG VI WF EH YE ZM ZW
    """
)
LANGUAGE_CODES = _words(
    """
    aa ab ae af ak am an ar as av ay az ba be bg bh bi bm bn bo br bs ca ce ch co cr cs cu cv cy da de
    dv dz ee el en eo es et eu fa ff fi fj fo fr fy ga gd gl gn gu gv ha he hi ho hr ht hu hy hz ia id
    ie ig ii ik io is it iu ja jv ka kg ki kj kk kl km kn ko kr ks ku kv kw ky la lb lg li ln lo lt lu
    lv mg mh mi mk ml mn mr ms mt my na nb nd ne ng nl nn no nr nv ny oc oj om or os pa pi pl ps pt qu
    rm rn ro ru rw sa sc sd se sg si sk sl sm sn so sq sr ss st su sv sw ta te tg th ti tk tl tn to tr
    ts tt tw ty ug uk ur uz ve vi vo wa wo xh yi yo za zh zu
    """
)
ABBYY_LANGUAGES = _words(
    """
    Arabic ArmenianEastern ArmenianGrabar ArmenianWestern Bulgarian Catalan ChinesePRC ChineseTaiwan
    Croatian Czech Danish Dutch DutchBelgian English Estonian Farsi Finnish French German Greek Hebrew
    Hungarian Icelandic Indonesian Irish Italian Japanese Korean KoreanHangul Latin Latvian Lithuanian
    Macedonian Malay Mongol Norwegian Polish PortugueseBrazilian PortugueseStandard Romanian Russian
    SerbianCyrillic SerbianLatin Slovenian Spanish Swedish Thai Turkish UighurCyrillic UighurLatin
    Ukrainian Vietnamese Welsh
    """
)


def _member_of(values: tuple[str, ...], what: str) -> Any:
    """A string type limited to `values`; the message names the kind of value instead of listing all."""
    allowed = frozenset(values)

    def check(value: str) -> str:
        if value not in allowed:
            raise _error(f"must be {what} (got {_show(value)})")
        return value

    return Annotated[str, AfterValidator(check), WithJsonSchema({"type": "string", "enum": list(values)})]


CurrencyCode = _member_of(CURRENCY_CODES, "an ISO 4217 currency code such as 'EUR'")
CountryCode = _member_of(COUNTRY_CODES, "an ISO 3166-1 alpha-2 country code such as 'DE'")
LanguageCode = _member_of(LANGUAGE_CODES, "an ISO 639-1 language code such as 'en'")
AbbyyLanguage = _member_of(ABBYY_LANGUAGES, "an ABBYY OCR language such as 'English' or 'German'")

#: spec ``customFields``: string values only.
CustomFields = dict[str, str]


# --- models: shared behaviour ------------------------------------------------------------------


def _reraised(error: ErrorDetails) -> InitErrorDetails:
    """`error` as it can be raised again: pydantic's own types keep their type and context."""
    if error["type"] == "body_rule":
        return {"type": _error(error["msg"]), "loc": error["loc"], "input": error["input"]}
    return {"type": error["type"], "loc": error["loc"], "input": error["input"], "ctx": error.get("ctx", {})}


def _validate_with(data: Any, handler: Callable[[Any], Any], messages: list[str], title: str) -> Any:
    """Run `handler`; raise its errors together with `messages` about the whole object, so none of
    them waits for another round trip."""
    extra: list[InitErrorDetails] = [{"type": _error(m), "loc": (), "input": data} for m in messages]
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


class SpecModel(BaseModel):
    """Base of every body model: strict JSON types, unknown properties kept, and whole-object rules
    reported with field errors."""

    model_config = ConfigDict(strict=True, extra="allow")

    @classmethod
    def object_errors(cls, data: dict[str, Any]) -> list[str]:
        """Rules that span properties (none by default); each string is a message about the object."""
        return []

    @model_validator(mode="wrap")
    @classmethod
    def _object_rules(cls, data: Any, handler: ModelWrapValidatorHandler[Self]) -> Self:
        messages = cls.object_errors(data) if isinstance(data, dict) else []
        return _validate_with(data, handler, messages, cls.__name__)


# --- documents ---------------------------------------------------------------------------------


def _flat_value(value: object) -> object:
    """External data is a flat object: scalar values only."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise _error(f"must be a string, number, boolean or null (got {_show(value)})")


FlatValue = Annotated[
    object, PlainValidator(_flat_value), WithJsonSchema({"type": ["string", "number", "boolean", "null"]})
]


def _external_data_errors(data: dict[str, Any]) -> list[str]:
    """The limits the API enforces by silently dropping data; refused here with the key named."""
    messages = []
    if len(data) > MAX_EXTERNAL_DATA_KEYS:
        messages.append(f"at most {MAX_EXTERNAL_DATA_KEYS} keys (got {len(data)})")
    for key in data:
        if isinstance(key, str) and len(key) > MAX_EXTERNAL_DATA_KEY_LENGTH:
            shown = key if len(key) <= 30 else key[:30] + "…"
            messages.append(f"key longer than {MAX_EXTERNAL_DATA_KEY_LENGTH} characters: {shown!r}")
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
    def _limits(cls, data: Any, handler: ModelWrapValidatorHandler[Self]) -> Self:
        messages = _external_data_errors(data) if isinstance(data, dict) else []
        return _validate_with(data, handler, messages, cls.__name__)


class DocumentsUpdateTransferRequest(SpecModel):
    """spec ``DocumentsUpdateTransferRequest``: the integration's report after pushing a document on."""

    successful: bool
    message: str = None


class ProcessFileRequest(SpecModel):
    """spec ``ProcessFileRequest``: turn an uploaded file into a document in a project."""

    fileId: str
    projectId: str
    externalId: str = None
    externalData: DocumentsUpdateExternalDataRequest = None


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
    members: list[str] = None


class SchemaDataPoint(SpecModel):
    """spec ``Schema.dataPoints[]`` (an inline object)."""

    internalName: str = None
    displayName: str = None
    type: str = None
    normalization: list[dict[str, Any]] = None
    rules: dict[str, Any] = None


class SchemaFeatures(SpecModel):
    """spec ``Schema.features`` (an inline object)."""

    derivation: bool = None


class ProjectSchema(SpecModel):
    """spec ``Schema``: a project's data-point schema, given when creating a project."""

    version: int = None
    dataPoints: list[SchemaDataPoint] = None
    features: SchemaFeatures = None
    enrichment: dict[str, Any] = None
    normalization: dict[str, Any] = None
    validation: dict[str, Any] = None


class ProjectCreateRequest(SpecModel):
    """spec ``ProjectCreateRequest``."""

    name: Annotated[str, StringConstraints(min_length=1, max_length=60)]
    note: Annotated[str, StringConstraints(min_length=1, max_length=1000)] = None
    ocr: Annotated[ProjectOCRAbbyy | ProjectOCRGoogle, Field(discriminator="engine")]
    extractionModelId: str
    completion: Literal["automatic", "manual"] = "manual"
    duplicates: Literal["allow", "fail"] = "fail"
    members: Annotated[ProjectAllMembers | ProjectMembers, Field(discriminator="allow")]
    schema_: ProjectSchema = Field(None, alias="schema")


# --- enrichment: shared parts ------------------------------------------------------------------


class LanguagedText(SpecModel):
    """spec ``languagedText``."""

    text: str = None
    language: LanguageCode | None = None


class LanguagedTextWithValue(SpecModel):
    """spec ``languagedTextWithValue``."""

    value: str = None
    labels: list[LanguagedText] = None


class PaymentTerms(SpecModel):
    """spec ``paymentTerms``."""

    paymentTermKey: str = None
    descriptions: list[LanguagedText] = None


class AccountAssignment(SpecModel):
    """spec ``accountAssignment``."""

    externalGlAccountId: str = None
    externalCostCenterId: str = None
    glAccountCode: str = None
    costCenterCode: str = None
    quantity: float = None
    externalProjectId: str = None
    externalOrderId: str = None


class TaxCode(SpecModel):
    """spec ``taxCode``."""

    description: str = None
    code: str = None


class VatId(SpecModel):
    """spec ``vatId``."""

    id: str = None
    countryCode: CountryCode | None = None


class TaxId(SpecModel):
    """spec ``taxId``."""

    id: str = None
    type: str = None


class BankAccount(SpecModel):
    """spec ``bankAccount``."""

    externalId: NoSpaces
    countryCode: CountryCode | None = None
    bankAccountNumber: str = None
    bankAccountHolder: str = None
    iban: str = None
    bic: str = None
    bankName: str = None
    bankStreet: str = None
    bankPostcode: str = None
    bankCity: str = None
    isActive: bool = None


class DefaultAccountAssignment(SpecModel):
    """spec ``defaultAssignments.defaultAccountAssignment`` (an inline object)."""

    glAccountCode: str = None
    costCenterCode: str = None
    externalApproverId: str = None
    externalProjectId: str = None
    externalOrderId: str = None


class DefaultAssignments(SpecModel):
    """spec ``defaultAssignments``: the part suppliers and subsidiaries share (``allOf``)."""

    defaultAccountAssignment: DefaultAccountAssignment = None


class WithholdingTaxInfo(SpecModel):
    """spec ``withholdingTaxInfo``."""

    description: str = None
    key: str = None


class Subsidiary(DefaultAssignments):
    """spec ``subsidiary`` (``allOf`` defaultAssignments and its own properties)."""

    externalCompanyId: str = None
    paymentTerms: PaymentTerms = None
    blockedForPosting: bool = None
    blockedForPayment: bool = None
    enabledForAutoPosting: bool = None
    defaultGlAccountCode: str = None  # deprecated in the spec, still accepted
    withholdingTaxInfo: list[WithholdingTaxInfo] = None


# --- enrichment: the eight insert bodies and their parts ---------------------------------------


class Approver(SpecModel):
    """spec ``approver`` (insertApprover)."""

    externalId: NoSpaces
    companyAssignment: list[str] = None
    isActive: bool = None
    firstName: str = None
    lastName: str = None
    email: Email = None
    phoneNumber: str = None


class Company(SpecModel):
    """spec ``company`` (insertCompany)."""

    externalId: NoSpaces
    name: NotBlank
    street: str = None
    addressAdditional: str = None
    postcode: str = None
    city: str = None
    state: str = None
    countryCode: CountryCode | None = None
    vatIds: list[VatId] = None
    taxIds: list[TaxId] = None
    customFields: CustomFields = None


class _CodedRecord(SpecModel):
    """The shape the spec's ``costCenter`` and ``glAccount`` share, field for field."""

    externalId: NoSpaces
    code: Trimmed
    companyAssignment: list[str] = None
    type: LanguagedTextWithValue = None
    category: LanguagedTextWithValue = None
    label: list[LanguagedText] = None
    shortLabel: list[LanguagedText] = None


class CostCenter(_CodedRecord):
    """spec ``costCenter`` (insertCostCenter)."""


class Customer(SpecModel):
    """spec ``customer`` (insertCustomer)."""

    externalId: NoSpaces
    name: NotBlank
    street: str = None
    addressAdditional: str = None
    postcode: str = None
    city: str = None
    countryCode: CountryCode | None = None
    vatIds: list[VatId] = None
    taxIds: list[TaxId] = None
    blockedForPosting: bool = None
    blockedForPayment: bool = None
    customerSubsidiaries: list[Subsidiary] = None
    customerBankAccounts: list[BankAccount] = None
    customFields: CustomFields = None


class GlAccount(_CodedRecord):
    """spec ``glAccount`` (insertGLAccount)."""


class Document(SpecModel):
    """spec ``document``: a reference from an invoice to a document in Hypatos Studio."""

    id: HexId
    type: NoSpaces = None


class InvoiceLine(SpecModel):
    """spec ``invoiceLine`` (no property is required; ``externalId`` identifies the line)."""

    externalId: NoSpaces = None
    externalCompanyId: str = None
    accountAssignments: list[AccountAssignment] = None
    type: str = None
    quantity: float = None
    netAmount: float = None
    totalTaxAmount: float = None
    grossAmount: float = None
    unitOfMeasure: str = None
    unitPrice: float = None
    taxCode: TaxCode = None
    taxJurisdictionCode: str = None
    itemText: str = None
    externalPurchaseOrderId: str = None
    purchaseOrderLineNumber: str = None
    centralBankIndicator: str = None
    customFields: CustomFields = None


class WithholdingTax(SpecModel):
    """spec ``withholdingTax``."""

    key: str = None
    baseAmount: float = None
    amount: float = None
    currency: CurrencyCode | None = None


class Invoice(SpecModel):
    """spec ``invoice`` (insertInvoice); its description also asks for documentId or documents."""

    externalId: NoSpaces
    documentId: HexId = None
    documents: Annotated[list[Document], Field(min_length=1)] = None
    supplierInvoiceNumber: str = None
    invoiceNumber: str = None
    externalCompanyId: str = None
    externalSupplierId: str = None
    externalBankAccountId: str = None
    fiscalYearLabel: str = None
    issuedDate: IsoDate = None
    receivedDate: IsoDate = None
    postingDate: IsoDate = None
    isCanceled: bool = None
    relatedInvoice: str = None
    currency: CurrencyCode | None = None
    totalNetAmount: float = None
    totalFreightCharges: float = None
    totalOtherCharges: float = None
    totalTaxAmount: float = None
    totalGrossAmount: float = None
    paymentTerms: PaymentTerms = None
    externalApproverId: str = None
    customFields: CustomFields = None
    headerText: str = None
    type: str = None
    invoiceLines: Annotated[list[InvoiceLine], Field(min_length=1)]
    withholdingTax: list[WithholdingTax] = None

    @classmethod
    def object_errors(cls, data: dict[str, Any]) -> list[str]:
        """The spec's description: "one property of [documentId, documents] is required"."""
        if "documentId" not in data and "documents" not in data:
            return ["needs documentId or documents (the invoice's document in Hypatos)"]
        return []


class Material(SpecModel):
    """spec ``purchaseOrderLine.material`` (an inline object)."""

    description: str = None
    externalId: NoSpaces = None
    supplierNumber: str = None
    type: str = None
    group: str = None


class PurchaseOrderLine(SpecModel):
    """spec ``purchaseOrderLine``."""

    purchaseOrderLineNumber: str
    externalCompanyId: str = None
    accountAssignments: list[AccountAssignment] = None
    type: str = None
    quantity: float = None
    status: str = None
    netAmount: float = None
    totalTaxAmount: float = None
    grossAmount: float = None
    unitOfMeasure: str = None
    unitPrice: float = None
    taxCode: TaxCode = None
    itemText: str = None
    material: Material = None
    customFields: CustomFields = None


class PurchaseOrder(SpecModel):
    """spec ``purchaseOrder`` (insertPurchaseOrder)."""

    externalId: NoSpaces
    createdDate: IsoDate = None
    fiscalYearLabel: str = None
    language: LanguageCode | None = None
    externalCompanyId: str = None
    type: str = None
    externalSupplierId: str = None
    status: str = None
    currency: CurrencyCode | None = None
    totalNetAmount: float = None
    totalFreightCharges: float = None
    totalOtherCharges: float = None
    totalTaxAmount: float = None
    totalGrossAmount: float = None
    paymentTerms: PaymentTerms = None
    customFields: CustomFields = None
    purchaseOrderLines: list[PurchaseOrderLine] = None


class Supplier(DefaultAssignments):
    """spec ``supplier`` (insertSupplier; ``allOf`` defaultAssignments and its own properties)."""

    externalId: NoSpaces
    name: NotBlank
    street: str = None
    addressAdditional: str = None
    postcode: str = None
    city: str = None
    state: str = None
    countryCode: CountryCode | None = None
    vatIds: list[VatId] = None
    taxIds: list[TaxId] = None
    blockedForPosting: bool = None
    blockedForPayment: bool = None
    defaultGlAccountCode: str = None  # deprecated in the spec, still accepted
    supplierSubsidiaries: list[Subsidiary] = None
    supplierBankAccounts: list[BankAccount] = None
    customFields: CustomFields = None


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


# --- pydantic errors as problems ---------------------------------------------------------------

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

_FIXED_MESSAGES = {"missing": "is required", "union_tag_not_found": "is required"}
_TYPE_MESSAGES = {
    "string_type": "must be a string",
    "bool_type": "must be a boolean",
    "float_type": "must be a number",
    "int_type": "must be an integer",
    "list_type": "must be a list",
    "dict_type": "must be an object",
    "model_type": "must be an object",
    "model_attributes_type": "must be an object",
}
_SIZE_ERRORS = frozenset({"too_short", "too_long", "string_too_short", "string_too_long"})


def _size_message(kind: str, ctx: dict[str, Any], size: int) -> str:
    """Messages for list and string length limits, with the size found."""
    verb, unit = ("be", "characters") if kind.startswith("string") else ("have", "items")
    if kind.endswith("too_long"):
        return f"must {verb} at most {ctx['max_length']} {unit} (got {size})"
    if ctx["min_length"] == 1:
        return "must not be empty"
    return f"must {verb} at least {ctx['min_length']} {unit} (got {size})"


def _message(error: ErrorDetails) -> str:
    """A short message saying what is expected, from one pydantic error."""
    kind, ctx, value = error["type"], error.get("ctx") or {}, error.get("input")
    if kind in _FIXED_MESSAGES:
        return _FIXED_MESSAGES[kind]
    if kind in _TYPE_MESSAGES:
        return f"{_TYPE_MESSAGES[kind]} (got {_show(value)})"
    if kind in _SIZE_ERRORS and isinstance(value, str | list | dict):
        return _size_message(kind, ctx, len(value))
    if kind == "literal_error":
        return f"must be {ctx['expected']} (got {_show(value)})"
    if kind == "union_tag_invalid":
        return f"must be one of {ctx['expected_tags']} (got {_show(ctx['tag'])})"
    if kind == "string_pattern_mismatch":
        rule = PATTERN_RULES.get(ctx["pattern"], f"must match {ctx['pattern']}")
        return f"{rule} (got {_show(value)})"
    return error["msg"]


def _field_name(loc: tuple[int | str, ...]) -> str:
    """``body``, ``body.name``, ``body.lines[0].name``; odd keys (spaces, dots) as ``body["a b"]``."""
    name = "body"
    for part in loc:
        if isinstance(part, int):
            name += f"[{part}]"
        elif _IDENTIFIER.fullmatch(part):
            name += f".{part}"
        else:
            name += f'["{part}"]'
    return name


def _location(error: ErrorDetails, tagged: frozenset[str]) -> tuple[int | str, ...]:
    """The error's place in the body, without the tags pydantic adds inside discriminated unions."""
    loc = tuple(error["loc"])
    if error["type"] in ("union_tag_invalid", "union_tag_not_found"):
        return (*loc, error["ctx"]["discriminator"].strip("'"))
    if len(loc) > 1 and loc[0] in tagged:
        return (loc[0], *loc[2:])
    return loc


def _tagged_fields(model: type[BaseModel]) -> frozenset[str]:
    """Top-level fields holding a discriminated union (``ocr``, ``members`` in projectsCreate)."""
    return frozenset(f.alias or n for n, f in model.model_fields.items() if f.discriminator)


def _model_problems(model: type[BaseModel], body: object) -> Problems:
    try:
        model.model_validate(body)
    except ValidationError as exc:
        tagged = _tagged_fields(model)
        return [
            {"field": _field_name(_location(e, tagged)), "message": _message(e)}
            for e in exc.errors(include_url=False)
        ]
    return []


def body_problems(operation_name: str, body: object) -> list[dict[str, str]]:
    """Problems with `body` for the operation (empty list when fine or when the operation has no body model)."""  # noqa: E501
    if operation_name in BODY_MODELS:
        return _model_problems(BODY_MODELS[operation_name], body)
    if operation_name in TEXT_CHECKS:
        if not isinstance(body, str):
            return [{"field": "body", "message": f"must be a string (got {_show(body)})"}]
        return [{"field": "body", "message": m} for m in TEXT_CHECKS[operation_name](body)]
    return []
