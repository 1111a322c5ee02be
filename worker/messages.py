"""The public message contract: the request a caller publishes and the result it gets back.

These models are the single source of the contract: `schemas/request.schema.json` and
`schemas/result.schema.json` are generated from them (``hypatos-worker schemas``), and a test keeps
the files and the models in step.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

#: Longest accepted request id.
MAX_ID_LENGTH = 128


class FileInput(BaseModel):
    """The file an upload sends: a path inside the inbox folder, or the bytes in base64."""

    model_config = ConfigDict(extra="forbid")

    path: str | None = Field(
        default=None,
        min_length=1,
        description="Path relative to the inbox folder (HYPATOS_INBOX_DIR); may not leave it.",
    )
    base64: str | None = Field(
        default=None, description="The bytes, base64-encoded (at most HYPATOS_MAX_BASE64_BYTES decoded)."
    )
    content_type: str | None = Field(
        default=None,
        description="application/pdf, image/jpeg, image/png or image/tiff; detected if absent.",
    )
    filename: str | None = Field(
        default=None,
        max_length=256,
        description="Name stored with the file (X-Hy-Filename); default: the path's file name.",
    )

    @model_validator(mode="after")
    def _one_source(self) -> FileInput:
        if (self.path is None) == (self.base64 is None):
            raise ValueError("give exactly one of `path` and `base64`")
        return self


class Request(BaseModel):
    """One operation to run against one connection, as published to the request queue."""

    model_config = ConfigDict(
        extra="forbid",
        title="HypatosRequest",
    )

    id: str = Field(
        min_length=1,
        max_length=MAX_ID_LENGTH,
        description="The caller's idempotency key for this request; copied into the result.",
    )
    connection: str = Field(min_length=1, max_length=128, description="Name of a configured connection.")
    operation: str = Field(
        min_length=1, max_length=128, description="Operation name from the catalog, e.g. `documentsGetById`."
    )
    params: dict[str, Any] = Field(
        default_factory=dict,
        description="Path, query and header parameters by their API names; repeatable ones take a list.",
    )
    body: Any = Field(
        default=None, description="JSON value (or text, for text operations) sent as the request body."
    )
    file: FileInput | None = Field(default=None, description="The file to upload (`uploadFile` only).")
    output: Literal["outbox", "base64"] = Field(
        default="outbox",
        description="For downloads: write the bytes to the outbox folder, or return them base64-encoded.",
    )
    all_pages: bool = Field(
        default=False, description="For list operations: follow offset/limit and return every item at once."
    )
    max_items: int | None = Field(
        default=None, ge=1, description="With `all_pages`: stop after this many items (default 10,000)."
    )
    options: dict[str, Any] = Field(
        default_factory=dict,
        description="Options of the service's own operations, e.g. `processDocument`'s `wait_for`.",
    )


class ErrorDetail(BaseModel):
    """One field at fault in a request."""

    field: str = Field(description="Where in the request, e.g. `params.limit` or `body.externalId`.")
    message: str


class ResultError(BaseModel):
    """Why a request failed."""

    code: str = Field(description="Stable machine-readable error code (README, 'Error codes').")
    message: str = Field(description="Human-readable explanation, with what to fix where known.")
    retryable: bool = Field(description="Whether sending the same request again later may succeed.")
    details: list[ErrorDetail] | None = Field(
        default=None, description="Each field at fault, for `validation_error` and `invalid_request`."
    )


class Result(BaseModel):
    """The outcome of one request, published to `reply_to` or the result queue."""

    model_config = ConfigDict(
        title="HypatosResult",
    )

    id: str = Field(description="The request's id.")
    connection: str | None = Field(description="The request's connection, null when it had none.")
    operation: str | None = Field(description="The request's operation, null when it had none.")
    status: Literal["succeeded", "failed"]
    http_status: int | None = Field(
        description="Status of the last Hypatos response, null when no call was answered."
    )
    data: Any = Field(description="The response body (JSON value or text); null when empty or failed early.")
    error: ResultError | None = Field(description="Null when the request succeeded.")
    attempts: int = Field(ge=0, description="HTTP calls made for this request (retries included).")
    duration_ms: float = Field(ge=0, description="Time spent executing the request, in milliseconds.")
