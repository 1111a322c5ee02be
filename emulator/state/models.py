"""Request models for project creation, following ProjectCreateRequest in the vendor spec."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

AbbyyLanguage = Literal[
    "Arabic",
    "ArmenianEastern",
    "ArmenianGrabar",
    "ArmenianWestern",
    "Bulgarian",
    "Catalan",
    "ChinesePRC",
    "ChineseTaiwan",
    "Croatian",
    "Czech",
    "Danish",
    "Dutch",
    "DutchBelgian",
    "English",
    "Estonian",
    "Farsi",
    "Finnish",
    "French",
    "German",
    "Greek",
    "Hebrew",
    "Hungarian",
    "Icelandic",
    "Indonesian",
    "Irish",
    "Italian",
    "Japanese",
    "Korean",
    "KoreanHangul",
    "Latin",
    "Latvian",
    "Lithuanian",
    "Macedonian",
    "Malay",
    "Mongol",
    "Norwegian",
    "Polish",
    "PortugueseBrazilian",
    "PortugueseStandard",
    "Romanian",
    "Russian",
    "SerbianCyrillic",
    "SerbianLatin",
    "Slovenian",
    "Spanish",
    "Swedish",
    "Thai",
    "Turkish",
    "UighurCyrillic",
    "UighurLatin",
    "Ukrainian",
    "Vietnamese",
    "Welsh",
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow")


class OcrAbbyy(_Model):
    engine: Literal["abbyy"]
    features: list[Literal["barcodes"]]
    languages: Annotated[list[AbbyyLanguage], Field(min_length=1, max_length=5)]


class OcrGoogle(_Model):
    engine: Literal["google"]
    features: list[Literal["barcodes", "disableBoxFilter", "plainText"]]


class AllMembers(_Model):
    allow: Literal["all"]


class Members(_Model):
    allow: Literal["members"]
    members: list[str] = []


class ProjectCreate(_Model):
    name: Annotated[str, Field(min_length=1, max_length=60)]
    note: Annotated[str, Field(min_length=1, max_length=1000)] | None = None
    ocr: Annotated[OcrAbbyy | OcrGoogle, Field(discriminator="engine")]
    extractionModelId: str
    completion: Literal["automatic", "manual"] = "manual"
    duplicates: Literal["allow", "fail"] = "fail"
    members: Annotated[AllMembers | Members, Field(discriminator="allow")]
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
