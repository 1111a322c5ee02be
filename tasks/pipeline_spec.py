"""What a ``processDocument`` request asks for, checked before anything runs.

``params``: ``projectId`` (required) and ``fileId`` (a file uploaded earlier, instead of ``file``).
``body``: optional ``externalId`` and ``externalData``, as ``processFileIntoDocument`` takes them.
``options``: ``wait_for`` (document states), ``deadline_s``, ``include`` (``entities``, ``states``).
Every problem is collected and reported at once, as for API operations (``validation_error``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pydantic

from tasks.body_problems import body_problems
from tasks.catalog import DOCUMENT_STATES
from tasks.text import printable, text_problem
from tasks.validation import Problems, check_file
from worker.errors import ValidationError
from worker.messages import Request

#: Where a document stands in its lifecycle; a document only ever moves to the same or a later stage.
STAGES: dict[str, int] = {
    "new": 0,
    "processing": 1,
    "extracted": 2,
    "reviewRequired": 2,
    "inCompletion": 3,
    "done": 4,
    "doneAutomatically": 4,
    "failed": 4,
    "junk": 4,
    "rejected": 4,
    "split": 4,
    "transferred": 5,
    "transferFailed": 5,
}
assert set(STAGES) == set(DOCUMENT_STATES)
#: States a document does not leave by processing alone; the default of ``wait_for``.
PROCESSED_STATES = ("done", "doneAutomatically", "failed", "junk", "rejected", "split")
#: States that end every wait: what is not wanted among them will not change by waiting longer.
SETTLED_STATES = frozenset(state for state, stage in STAGES.items() if stage >= STAGES["done"])
#: The default wait, in seconds, before a request fails with ``timeout``.
DEFAULT_DEADLINE_S = 3600.0
INCLUDE_CHOICES = ("entities", "states")


class ProcessDocumentOptions(pydantic.BaseModel):
    """``options`` of ``processDocument``."""

    model_config = pydantic.ConfigDict(extra="forbid")

    wait_for: list[str] = pydantic.Field(default_factory=lambda: list(PROCESSED_STATES), min_length=1)
    deadline_s: float = pydantic.Field(default=DEFAULT_DEADLINE_S, gt=0)
    include: list[str] = pydantic.Field(default_factory=lambda: ["entities"])

    @pydantic.field_validator("wait_for")
    @classmethod
    def _known_states(cls, states: list[str]) -> list[str]:
        unknown = [s for s in states if s not in STAGES]
        if unknown:
            raise ValueError(f"unknown state(s) {unknown}; states are {', '.join(DOCUMENT_STATES)}")
        return states

    @pydantic.field_validator("include")
    @classmethod
    def _known_parts(cls, parts: list[str]) -> list[str]:
        unknown = [p for p in parts if p not in INCLUDE_CHOICES]
        if unknown:
            raise ValueError(f"unknown part(s) {unknown}; choose from {', '.join(INCLUDE_CHOICES)}")
        return parts


def wanted_states(wait_for: list[str]) -> frozenset[str]:
    """The states that end the wait: those named, and every state of a later stage than the earliest
    named (a document that went past ``extracted`` to ``doneAutomatically`` between two looks has
    reached what was waited for, and cannot leave these states again by itself)."""
    earliest = min(STAGES[state] for state in wait_for)
    return frozenset(wait_for) | {state for state, stage in STAGES.items() if stage > earliest}


@dataclass(frozen=True)
class DocumentSpec:
    """A checked ``processDocument`` request."""

    project_id: str
    file_id: str | None
    external_id: str | None
    external_data: dict[str, Any] | None
    options: ProcessDocumentOptions

    @property
    def wanted(self) -> frozenset[str]:
        """States the caller waits for (`wanted_states`)."""
        return wanted_states(self.options.wait_for)

    @property
    def awaited(self) -> frozenset[str]:
        """States that end the wait: the wanted ones, and the settled ones (which would never change)."""
        return self.wanted | SETTLED_STATES

    def process_body(self, file_id: str) -> dict[str, Any]:
        """The ``processFileIntoDocument`` body for the uploaded file."""
        body: dict[str, Any] = {"fileId": file_id, "projectId": self.project_id}
        if self.external_id is not None:
            body["externalId"] = self.external_id
        if self.external_data is not None:
            body["externalData"] = self.external_data
        return body


def _text_param(params: dict[str, Any], name: str, problems: Problems) -> str | None:
    value = params.get(name)
    if value is None:
        return None
    problem = "must be a non-empty string" if not isinstance(value, str) or not value else text_problem(value)
    if problem:
        problems.append({"field": f"params.{name}", "message": problem})
        return None
    return str(value)


def _check_params(request: Request, problems: Problems) -> tuple[str | None, str | None]:
    for name in request.params:
        if name not in ("projectId", "fileId"):
            message = "unknown parameter (accepted: projectId, fileId)"
            problems.append({"field": f"params.{printable(name)}", "message": message})
    project_id = _text_param(request.params, "projectId", problems)
    if project_id is None and "projectId" not in request.params:
        problems.append({"field": "params.projectId", "message": "is required"})
    file_id = _text_param(request.params, "fileId", problems)
    given = [
        name
        for name, value in (("file", request.file), ("params.fileId", request.params.get("fileId")))
        if value is not None
    ]
    if len(given) != 1:
        message = "give exactly one of `file` (to upload) and `params.fileId` (a file uploaded earlier)"
        problems.append({"field": "file", "message": message})
    return project_id, file_id


def _check_body(request: Request, project_id: str | None, problems: Problems) -> None:
    body = request.body
    if body is None:
        return
    if not isinstance(body, dict):
        problems.append({"field": "body", "message": "must be a JSON object (externalId, externalData)"})
        return
    for name in body:
        if name not in ("externalId", "externalData"):
            hint = "; give projectId and fileId in params" if name in ("projectId", "fileId") else ""
            problems.append({"field": f"body.{printable(name)}", "message": f"unknown field{hint}"})
    complete = {"fileId": "0" * 24, "projectId": project_id or "0" * 24, **body}
    problems.extend(body_problems("processFileIntoDocument", complete))


def _check_request_fields(request: Request, problems: Problems) -> None:
    if request.output != "outbox" or request.all_pages or request.max_items is not None:
        problems.append(
            {"field": "output", "message": "processDocument takes no output, all_pages or max_items"}
        )


def _options(request: Request, max_deadline_s: float, problems: Problems) -> ProcessDocumentOptions | None:
    try:
        options = ProcessDocumentOptions.model_validate(request.options)
    except pydantic.ValidationError as exc:
        for error in exc.errors():
            field = ".".join(str(p) for p in error["loc"][:1])
            problems.append({"field": f"options.{field}" if field else "options", "message": error["msg"]})
        return None
    if options.deadline_s > max_deadline_s:
        message = f"must be at most {max_deadline_s:.0f} (HYPATOS_RESULT_TTL_S, how long a journey is kept)"
        problems.append({"field": "options.deadline_s", "message": message})
    return options


def parse_spec(request: Request, max_deadline_s: float) -> DocumentSpec:
    """The checked request, or `ValidationError` naming every field at fault."""
    problems: Problems = []
    project_id, file_id = _check_params(request, problems)
    _check_body(request, project_id, problems)
    _check_request_fields(request, problems)
    check_file(request.file, problems)
    options = _options(request, max_deadline_s, problems)
    if problems or project_id is None or options is None:
        summary = "; ".join(f"{p['field']}: {p['message']}" for p in problems)
        raise ValidationError(f"processDocument: {summary}", details=problems)
    body = request.body or {}
    return DocumentSpec(project_id, file_id, body.get("externalId"), body.get("externalData"), options)
