"""The Hypatos operation catalog: every operation declared once, as data.

An `Operation` says everything the service needs to know about one API call: its name (the Boomi
"Hypatos.ai - Partner" object name), method, path template, required scope, parameters with where
they go and what they accept, the kind of body it sends and the kind of response it gets.  Request
validation (`tasks.validation`), request building (`tasks.requests`), the ``operations`` command and
the README's table are all derived from these declarations.  Adding an operation is one entry here
plus its tests.
"""

from __future__ import annotations

import enum
import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType


class In(enum.StrEnum):
    """Where a parameter travels."""

    PATH = "path"
    QUERY = "query"
    HEADER = "header"


class BodyKind(enum.StrEnum):
    """What the request sends."""

    NONE = "none"
    JSON = "json"
    TEXT = "text"
    BINARY = "binary"


class ResponseKind(enum.StrEnum):
    """What a successful response carries."""

    JSON = "json"
    EMPTY = "empty"
    BINARY = "binary"


@dataclass(frozen=True)
class Param:
    """One path, query or header parameter, named as the API names it."""

    name: str
    location: In
    type: type = str
    required: bool = False
    repeatable: bool = False
    choices: tuple[str, ...] = ()
    minimum: int | None = None
    maximum: int | None = None
    max_length: int | None = None
    description: str = ""


@dataclass(frozen=True)
class Operation:
    """One Hypatos API operation."""

    name: str
    method: str
    path: str
    scope: str
    params: tuple[Param, ...] = ()
    body: BodyKind = BodyKind.NONE
    response: ResponseKind = ResponseKind.JSON
    success_status: int = 200
    #: Creates something on each call: never executed twice for one request id.
    creates: bool = False
    #: Returns the ``{data, limit, offset, totalCount}`` list envelope.
    paged: bool = False
    summary: str = ""

    @functools.cached_property
    def path_params(self) -> tuple[Param, ...]:
        """Parameters substituted into the path template (computed once: it is on every call's path)."""
        return tuple(p for p in self.params if p.location is In.PATH)


# --- shared parameter declarations -------------------------------------------------------------

DOCUMENT_STATES = (
    "new",
    "processing",
    "extracted",
    "reviewRequired",
    "inCompletion",
    "done",
    "doneAutomatically",
    "failed",
    "junk",
    "split",
    "rejected",
    "transferred",
    "transferFailed",
)


def _id(name: str = "id", description: str = "") -> Param:
    return Param(name, In.PATH, required=True, description=description)


OFFSET = Param("offset", In.QUERY, int, minimum=0, description="zero-based offset of the first item")
LIMIT = Param("limit", In.QUERY, int, minimum=0, maximum=50, description="items per page (default 20)")
COMPANY_HEADER = Param(
    "X-Hy-Meta-Internal-Company-Id", In.HEADER, description="company the record belongs to"
)
LINE_NUMBER = Param("lineNumber", In.QUERY, description="remove only this line")

ENRICHMENT_KINDS = {
    # operation suffix: (path segment, has line numbers)
    "Approver": ("approvers", False),
    "Company": ("companies", False),
    "CostCenter": ("cost-centers", False),
    "Customer": ("customers", False),
    "GLAccount": ("gl-accounts", False),
    "Invoice": ("invoices", True),
    "PurchaseOrder": ("purchase-orders", True),
    "Supplier": ("suppliers", False),
}


def _document_operations() -> list[Operation]:
    doc_id = _id(description="document id")
    return [
        Operation(
            "documentsGetById",
            "GET",
            "/documents/{id}",
            "documents.read",
            (doc_id,),
            summary="Retrieve a document by id",
        ),
        Operation(
            "documentsList",
            "GET",
            "/documents",
            "documents.read",
            (
                Param("projectId", In.QUERY, repeatable=True, description="only these projects"),
                OFFSET,
                LIMIT,
                Param(
                    "sort",
                    In.QUERY,
                    choices=(
                        "createdAt",
                        "-createdAt",
                        "+createdAt",
                        "updatedAt",
                        "-updatedAt",
                        "+updatedAt",
                    ),
                ),
                Param("state", In.QUERY, repeatable=True, choices=DOCUMENT_STATES),
                Param("fileId", In.QUERY, description="only documents created from this file"),
            ),
            paged=True,
            summary="Retrieve a list of documents",
        ),
        Operation(
            "retrieveDocumentStates",
            "GET",
            "/documents/{id}/states",
            "documents.read",
            (doc_id,),
            summary="Retrieve the states a document passed through",
        ),
        Operation(
            "documentUpdateExternalData",
            "POST",
            "/documents/{id}/external-data",
            "documents.write",
            (doc_id,),
            body=BodyKind.JSON,
            response=ResponseKind.EMPTY,
            success_status=202,
            summary="Replace a document's external data (flat object, max 20 keys)",
        ),
        Operation(
            "documentsUpdateExternalId",
            "POST",
            "/documents/{id}/external-id",
            "documents.write",
            (doc_id,),
            body=BodyKind.TEXT,
            response=ResponseKind.EMPTY,
            success_status=202,
            summary="Set a document's external id",
        ),
        Operation(
            "documentsUpdateTitle",
            "POST",
            "/documents/{id}/title",
            "documents.write",
            (doc_id,),
            body=BodyKind.TEXT,
            response=ResponseKind.EMPTY,
            success_status=202,
            summary="Set a document's title (max 256 characters)",
        ),
        Operation(
            "documentsUpdateTransfer",
            "POST",
            "/documents/{id}/transfer",
            "documents.write",
            (doc_id,),
            body=BodyKind.JSON,
            response=ResponseKind.EMPTY,
            success_status=202,
            summary="Report the transfer of a document to the target system",
        ),
        Operation(
            "processFileIntoDocument",
            "POST",
            "/documents/process-file",
            "documents.write",
            body=BodyKind.JSON,
            success_status=202,
            creates=True,
            summary="Create a document from an uploaded file",
        ),
    ]


def _file_and_misc_operations() -> list[Operation]:
    return [
        Operation(
            "uploadFile",
            "POST",
            "/files",
            "files.write",
            (Param("X-Hy-Filename", In.HEADER, max_length=256, description="file name to store"),),
            body=BodyKind.BINARY,
            success_status=201,
            creates=True,
            summary="Upload a file",
        ),
        Operation(
            "retrieveFile",
            "GET",
            "/files/{id}",
            "files.read",
            (_id(description="file id"),),
            response=ResponseKind.BINARY,
            summary="Download a file",
        ),
        Operation(
            "emailsContentGetByDocumentId",
            "GET",
            "/emails/{id}/content",
            "emails.read",
            (_id(description="document id"),),
            response=ResponseKind.BINARY,
            summary="Download the email content of a document as PDF",
        ),
        Operation(
            "companiesGetById",
            "GET",
            "/companies/{id}",
            "companies.read",
            (_id(description="company id"),),
            summary="Retrieve a company by id",
        ),
        Operation("companiesList", "GET", "/companies", "companies.read", summary="Retrieve all companies"),
        Operation(
            "projectsGetById",
            "GET",
            "/projects/{id}",
            "projects.read",
            (_id(description="project id"),),
            summary="Retrieve a project by id",
        ),
        Operation(
            "projectsList",
            "GET",
            "/projects",
            "projects.read",
            (
                OFFSET,
                LIMIT,
                Param("sort", In.QUERY, choices=("-createdAt", "+createdAt")),
                Param("search", In.QUERY, description="text matched against project name and id"),
            ),
            paged=True,
            summary="Retrieve a list of projects",
        ),
        Operation(
            "schemasGetByProjectId",
            "GET",
            "/projects/{id}/schema",
            "projects.read",
            (_id(description="project id"),),
            summary="Retrieve a project's schema",
        ),
        Operation(
            "projectsCreate",
            "POST",
            "/projects",
            "projects.write",
            body=BodyKind.JSON,
            success_status=201,
            creates=True,
            summary="Create a project",
        ),
    ]


def _enrichment_operations() -> list[Operation]:
    operations = []
    for kind, (segment, has_lines) in ENRICHMENT_KINDS.items():
        operations.append(
            Operation(
                f"insert{kind}",
                "POST",
                f"/enrichment/{segment}",
                "enrichment.write",
                (COMPANY_HEADER,),
                body=BodyKind.JSON,
                summary=f"Insert or replace {segment} master data (upsert by externalId)",
            )
        )
        delete_params = (_id("externalId", "the record's externalId"), COMPANY_HEADER)
        operations.append(
            Operation(
                f"delete{kind}",
                "DELETE",
                f"/enrichment/{segment}/{{externalId}}",
                "enrichment.delete",
                delete_params + ((LINE_NUMBER,) if has_lines else ()),
                response=ResponseKind.EMPTY,
                success_status=204,
                summary=f"Mark {segment} master data deleted",
            )
        )
    return operations


def _check(operations: Iterable[Operation]) -> Mapping[str, Operation]:
    """Index the declarations, refusing duplicates and path templates that disagree with the params."""
    index: dict[str, Operation] = {}
    for operation in operations:
        if operation.name in index:
            raise ValueError(f"operation {operation.name!r} is declared twice")
        placeholders = set(re.findall(r"{(\w+)}", operation.path))
        declared = {p.name for p in operation.path_params}
        if placeholders != declared:
            raise ValueError(
                f"operation {operation.name!r}: path {operation.path} vs params {sorted(declared)}"
            )
        index[operation.name] = operation
    return MappingProxyType(index)


#: Every operation, by name.
CATALOG: Mapping[str, Operation] = _check(
    [*_document_operations(), *_file_and_misc_operations(), *_enrichment_operations()]
)
