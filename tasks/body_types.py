"""The value types of the vendor's request bodies: constrained strings, code lists, nullability.

`tasks.bodies` builds its models from these.  Each type says in words what it expects, so a refused
value gets a message a caller can act on (``must be an ISO 3166-1 alpha-2 country code such as 'DE'``)
instead of a regular expression or a list of 250 codes; the JSON schema still carries the exact rule,
which ``tests/tasks/test_bodies.py`` compares with the spec.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from types import MappingProxyType
from typing import Annotated, Any, Final, TypeVar

from pydantic import (
    AfterValidator,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    PlainValidator,
    StringConstraints,
    WithJsonSchema,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import PydanticCustomError, core_schema

#: The pydantic error type of every rule written here; its message is shown to the caller as written.
RULE_ERROR: Final = "body_rule"


def rule_error(message: str) -> PydanticCustomError:
    """A validation error whose message is shown to the caller as written."""
    return PydanticCustomError(RULE_ERROR, "{message}", {"message": message})


def shown(value: object) -> str:
    """A short, JSON-flavoured rendering of an offending value for messages."""
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    text = repr(value)
    return text if len(text) <= 40 else text[:39] + "…"


# --- nullability -------------------------------------------------------------------------------


class _NullableMarker:
    """Marks a property the spec declares ``nullable``; see `Nullable`."""

    def __repr__(self) -> str:
        return "NULLABLE"


#: Metadata of a `Nullable` property; `tasks.bodies.SpecModel` looks for it.
NULLABLE: Final = _NullableMarker()

T = TypeVar("T")

#: A property that may be absent or an explicit ``null``: the spec marks it ``nullable`` (the ISO code
#: enums).  Any other optional property, typed ``T | None = None``, may be absent but not ``null``.
Nullable = Annotated[T | None, NULLABLE]


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
    raise rule_error(f"must be a date as YYYY-MM-DD (got {shown(value)})")


def _check_email(value: str) -> str:
    """A plausibility check for ``format: email``: something@domain.tld, no whitespace."""
    if not _EMAIL.fullmatch(value):
        raise rule_error(f"must be an email address (got {shown(value)})")
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


@dataclass(frozen=True)
class CodeList:
    """String metadata: the value must be one of `codes`; the message names `what` instead of listing all.

    The JSON schema is the spec's ``enum``, so the comparison with the spec sees every code.
    """

    codes: tuple[str, ...]
    what: str

    def __get_pydantic_core_schema__(
        self, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        allowed = frozenset(self.codes)

        def check(value: str) -> str:
            if value not in allowed:
                raise rule_error(f"must be {self.what} (got {shown(value)})")
            return value

        return core_schema.no_info_after_validator_function(check, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {"type": "string", "enum": list(self.codes)}


CurrencyCode = Annotated[str, CodeList(CURRENCY_CODES, "an ISO 4217 currency code such as 'EUR'")]
CountryCode = Annotated[str, CodeList(COUNTRY_CODES, "an ISO 3166-1 alpha-2 country code such as 'DE'")]
LanguageCode = Annotated[str, CodeList(LANGUAGE_CODES, "an ISO 639-1 language code such as 'en'")]
AbbyyLanguage = Annotated[
    str, CodeList(ABBYY_LANGUAGES, "an ABBYY OCR language such as 'English' or 'German'")
]

#: spec ``customFields``: string values only.
CustomFields = dict[str, str]


# --- external data values ----------------------------------------------------------------------


def _flat_value(value: object) -> object:
    """External data is a flat object: scalar values only."""
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise rule_error(f"must be a string, number, boolean or null (got {shown(value)})")


FlatValue = Annotated[
    object, PlainValidator(_flat_value), WithJsonSchema({"type": ["string", "number", "boolean", "null"]})
]
