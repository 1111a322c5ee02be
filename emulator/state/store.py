"""The emulated tenant's data and the rules the API applies to it."""

from __future__ import annotations

import hashlib
import heapq
import random
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from emulator import ids
from emulator.clock import Clock, iso
from emulator.errors import ApiError, bad_request, not_found
from emulator.settings import Settings
from emulator.state.documents import BUSY_STATES, STATE_SET, Document, path_to, plan
from emulator.state.enrichment import Enrichment
from emulator.state.entities import default_schema
from emulator.state.models import ProjectCreate

SEEDED_BY = "emulator"
"""Creator recorded for files and documents made through the admin API."""
SUPPORTED_TYPES = {"application/pdf": "pdf", "image/jpeg": "jpg", "image/png": "png", "image/tiff": "tiff"}
EXTERNAL_DATA_MAX_KEYS = 20
EXTERNAL_DATA_MAX_KEY_LENGTH = 50
TITLE_MAX_LENGTH = 256
FILENAME_MAX_LENGTH = 256
SORT_KEYS = {
    "createdAt": ("created_at", False),
    "+createdAt": ("created_at", False),
    "-createdAt": ("created_at", True),
    "updatedAt": ("updated_at", False),
    "+updatedAt": ("updated_at", False),
    "-updatedAt": ("updated_at", True),
}


@dataclass(slots=True)
class StoredFile:
    """An upload's metadata; its bytes live once per content in `Store.blobs`, keyed by sha256."""

    id: str
    sha256: str
    content_type: str
    filename: str | None
    size: int
    created_at: float
    created_by: str


def clean_external_data(data: Any) -> dict[str, Any]:
    """Apply the external-data rules: a flat object, keys over 50 characters dropped, at most 20 keys.

    Keys are case-insensitive, so keys differing only in case collapse into the last one given.
    """
    if not isinstance(data, dict):
        raise bad_request("Invalid external data", "External data must be a flat JSON object")
    kept: dict[str, tuple[str, Any]] = {}
    for key, value in data.items():
        if isinstance(value, dict | list):
            raise bad_request("Invalid external data", f"Value of {key!r} is not flat")
        if len(key) > EXTERNAL_DATA_MAX_KEY_LENGTH:
            continue
        kept[key.lower()] = (key, value)
    if len(kept) > EXTERNAL_DATA_MAX_KEYS:
        raise bad_request(
            "Invalid external data",
            f"At most {EXTERNAL_DATA_MAX_KEYS} key-value pairs are allowed, got {len(kept)}",
        )
    return dict(kept.values())


class Store:
    """All tenant data; used only from the event loop thread."""

    def __init__(self, clock: Clock, settings: Settings, rng: random.Random) -> None:
        self.clock = clock
        self.settings = settings
        self.rng = rng
        self.reset()

    def reset(self) -> None:
        self.files: dict[str, StoredFile] = {}
        self.blobs: dict[str, bytes] = {}
        self.documents: dict[str, Document] = {}
        self.projects: dict[str, dict[str, Any]] = {}
        self.schemas: dict[str, dict[str, Any]] = {}
        self.companies: dict[str, dict[str, Any]] = {}
        self.enrichment = Enrichment()
        self._seen_content: dict[str, set[str]] = {}
        self._due: list[tuple[float, int, Document]] = []
        self._seq = 0
        self._ordered = True
        self._last_created = 0.0

    # ---- files -------------------------------------------------------------------------------

    def add_file(
        self, content: bytes, content_type: str, filename: str | None, actor: str = SEEDED_BY
    ) -> StoredFile:
        media = content_type.split(";", 1)[0].strip().lower()
        if media not in SUPPORTED_TYPES:
            raise ApiError(400, "Content type not supported", "The provided content type is not supported")
        if not content:
            raise bad_request("Payload is empty", "The uploaded file has no content")
        if filename is not None and len(filename) > FILENAME_MAX_LENGTH:
            raise bad_request(
                "Invalid filename", f"X-Hy-Filename is longer than {FILENAME_MAX_LENGTH} characters"
            )
        now = self.clock.now()
        digest = hashlib.sha256(content).hexdigest()
        self.blobs.setdefault(digest, content)
        stored = StoredFile(ids.object_id(now), digest, media, filename, len(content), now, actor)
        self.files[stored.id] = stored
        return stored

    def get_file(self, file_id: str) -> tuple[StoredFile, bytes]:
        stored = self.files.get(file_id)
        if stored is None:
            raise ApiError(404, "File not found", "File with given identifier does not exist")
        return stored, self.blobs[stored.sha256]

    # ---- projects ----------------------------------------------------------------------------

    def create_project(self, payload: Any, actor: str) -> dict[str, Any]:
        try:
            request = ProjectCreate.model_validate(payload)
        except ValidationError as exc:
            detail = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            raise ApiError(422, "Request validation error", detail) from None
        now = self.clock.now()
        project = request.model_dump(mode="json", exclude_none=True, exclude={"schema_"})
        stamp = iso(now)
        project.update(
            id=ids.object_id(now), createdAt=stamp, createdBy=actor, updatedAt=stamp, updatedBy=actor
        )
        self.projects[project["id"]] = project
        self.schemas[project["id"]] = request.schema_ or default_schema()
        return project

    def get_project(self, project_id: str) -> dict[str, Any]:
        project = self.projects.get(project_id)
        if project is None:
            raise ApiError(404, "Project does not exist", "The project with given identifier does not exist")
        return project

    def list_projects(self, search: str | None, descending: bool) -> list[dict[str, Any]]:
        projects = list(self.projects.values())
        if search:
            needle = search.lower()
            projects = [p for p in projects if needle in p["name"].lower() or needle in p["id"]]
        projects.sort(key=lambda p: (p["createdAt"], p["id"]), reverse=descending)
        return projects

    def project_schema(self, project_id: str) -> dict[str, Any]:
        if not ids.is_object_id(project_id):
            raise ApiError(
                400, "Provided project identifier is invalid", "One of the given query parameters is invalid"
            )
        self.get_project(project_id)
        return self.schemas[project_id]

    # ---- companies ---------------------------------------------------------------------------

    def add_company(self, name: str, active: bool = True) -> dict[str, Any]:
        now = self.clock.now()
        company = {
            "id": ids.object_id(now),
            "name": name,
            "active": active,
            "createdAt": iso(now).replace("Z", "000Z"),
        }
        self.companies[company["id"]] = company
        return company

    def get_company(self, company_id: str) -> dict[str, Any]:
        if not ids.is_object_id(company_id):
            raise ApiError(400, "Invalid company ID", f"{company_id!r} is not a valid company identifier")
        company = self.companies.get(company_id)
        if company is None:
            raise ApiError(404, "Company does not exists", "The company with given identifier does not exist")
        return company

    # ---- documents ---------------------------------------------------------------------------

    def _new_document(self, stored: StoredFile, project_id: str, actor: str, now: float) -> Document:
        self._seq += 1
        doc_id = ids.object_id(now)
        title = stored.filename or f"{stored.id}.{SUPPORTED_TYPES[stored.content_type]}"
        doc = Document(doc_id, self._seq, project_id, stored.id, title, now, actor)
        if now < self._last_created:
            self._ordered = False
        self._last_created = max(self._last_created, now)
        self.documents[doc_id] = doc
        return doc

    def _schedule(self, doc: Document) -> None:
        at = doc.next_change()
        if at is not None:
            heapq.heappush(self._due, (at, doc.seq, doc))

    def process_file(
        self,
        file_id: str,
        project_id: str,
        actor: str,
        external_id: str | None = None,
        external_data: dict[str, Any] | None = None,
    ) -> Document:
        """Create a document from an uploaded file; it then moves through the lifecycle."""
        stored, _ = self.get_file(file_id)
        project = self.get_project(project_id)
        now = self.clock.now()
        seen = self._seen_content.setdefault(project_id, set())
        duplicate = project["duplicates"] == "fail" and stored.sha256 in seen
        seen.add(stored.sha256)
        doc = self._new_document(stored, project_id, actor, now)
        doc.external_id = external_id
        doc.external_data = external_data or {}
        doc.pending = plan(self.settings, project["completion"], self.rng, now, duplicate)
        doc.advance(now)
        self._schedule(doc)
        return doc

    def seed_document(self, stored: StoredFile, project_id: str, state: str | None, actor: str) -> Document:
        """Create a document already in `state` (None: where its lifecycle ends), with a past history."""
        project = self.get_project(project_id)
        if state is not None and state not in STATE_SET:
            raise ValueError(f"unknown state {state!r}")
        now = self.clock.now()
        if state is None:
            steps = [s for _, s in plan(self.settings, project["completion"], self.rng, now, False)]
        else:
            steps = path_to(state, project["completion"])
        start = now - 0.001 * len(steps)
        doc = self._new_document(stored, project_id, actor, start)
        for i, step in enumerate(steps, 1):
            doc.set_state(step, start + 0.001 * i, "system")
        self._seen_content.setdefault(project_id, set()).add(stored.sha256)
        return doc

    def tick(self, now: float) -> None:
        """Apply due lifecycle changes (cheap when nothing is due)."""
        due = self._due
        while due and due[0][0] <= now:
            _, _, doc = heapq.heappop(due)
            doc.advance(now)
            self._schedule(doc)  # each document has at most one heap entry

    def get_document(self, doc_id: str) -> Document:
        doc = self.documents.get(doc_id)
        if doc is None:
            raise not_found("Document")
        if doc.pending:
            doc.advance(self.clock.now())
        return doc

    def list_documents(
        self, project_ids: list[str], states: list[str], file_id: str | None, sort: str
    ) -> list[Document]:
        self.tick(self.clock.now())
        docs: Any = self.documents.values()
        if project_ids:
            wanted = set(project_ids)
            docs = [d for d in docs if d.project_id in wanted]
        if states:
            wanted_states = set(states)
            docs = [d for d in docs if d.state in wanted_states]
        if file_id is not None:
            docs = [d for d in docs if d.file_id == file_id]
        attr, descending = SORT_KEYS[sort]
        if attr == "created_at" and self._ordered:
            docs = list(docs)
            if descending:
                docs.reverse()
            return docs
        return sorted(docs, key=lambda d: (getattr(d, attr), d.seq), reverse=descending)

    def records(self) -> tuple[list[StoredFile], list[Document]]:
        """Every stored file and document in creation order, with due lifecycle changes applied."""
        self.tick(self.clock.now())
        return list(self.files.values()), list(self.documents.values())

    def report_transfer(self, doc_id: str, successful: bool, message: str | None, actor: str) -> None:
        doc = self.get_document(doc_id)
        if doc.state in BUSY_STATES:
            raise bad_request(
                "Document is not ready for transfer",
                f"The document is in state {doc.state!r} and cannot be transferred yet",
            )
        now = self.clock.now()
        doc.pending.clear()
        doc.transfers.append({"successful": successful, "message": message, "reportedAt": iso(now)})
        doc.set_state("transferred" if successful else "transferFailed", now, actor)

    def force_state(self, doc_id: str, state: str) -> Document:
        """Admin hook: move a document to any state now (what a Studio user would do)."""
        if state not in STATE_SET:
            raise ValueError(f"unknown state {state!r}")
        doc = self.get_document(doc_id)
        doc.pending.clear()
        doc.set_state(state, self.clock.now(), "system")
        return doc
