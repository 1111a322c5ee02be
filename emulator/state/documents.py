"""Documents and their lifecycle.

A document carries a plan of future state changes computed when it is created; reading it applies
the changes whose time has come. No background task is needed and a test can make processing
instant (zero durations) or drive it (advance the clock, or set a state through the admin API).
"""

from __future__ import annotations

import random
from typing import Any

from emulator.clock import iso
from emulator.errors import json_bytes
from emulator.settings import Settings
from emulator.state.entities import invoice_entities

STATES: tuple[str, ...] = (
    "done",
    "doneAutomatically",
    "extracted",
    "failed",
    "inCompletion",
    "junk",
    "new",
    "processing",
    "rejected",
    "reviewRequired",
    "split",
    "transferFailed",
    "transferred",
)
STATE_SET = frozenset(STATES)
BUSY_STATES = frozenset({"new", "processing"})
WITH_ENTITIES = frozenset(
    {
        "extracted",
        "reviewRequired",
        "inCompletion",
        "done",
        "doneAutomatically",
        "rejected",
        "transferred",
        "transferFailed",
    }
)
SYSTEM_USER = "system"
REVIEWER_ID = "5f0c8a2e9d1b4c3a2b1e0f99"


class Document:
    """One document; mutated only on the event loop thread.

    Kept small, since batch runs hold ten thousand of them: the extracted entities are not stored but
    generated from the id when the document is shown (they are the same on every read), and the
    serialized body is cached only until the document changes.
    """

    __slots__ = (
        "_body",
        "completed_at",
        "completed_by",
        "created_at",
        "created_by",
        "external_data",
        "external_id",
        "file_id",
        "history",
        "id",
        "pending",
        "project_id",
        "seq",
        "state",
        "title",
        "transfers",
        "updated_at",
        "updated_by",
    )

    def __init__(
        self,
        doc_id: str,
        seq: int,
        project_id: str,
        file_id: str,
        title: str,
        created_at: float,
        created_by: str,
    ) -> None:
        self.id = doc_id
        self.seq = seq
        self.project_id = project_id
        self.file_id = file_id
        self.title = title
        self.created_at = created_at
        self.created_by = created_by
        self.updated_at = created_at
        self.updated_by = created_by
        self.state = "new"
        self.history: list[tuple[str, float]] = [("new", created_at)]
        self.pending: list[tuple[float, str]] = []
        self.external_id: str | None = None
        self.external_data: dict[str, Any] = {}
        self.completed_at: float | None = None
        self.completed_by: str | None = None
        self.transfers: list[dict[str, Any]] = []
        self._body: bytes | None = None

    def advance(self, now: float) -> bool:
        """Apply planned state changes that are due; True if the state changed."""
        pending = self.pending
        if not pending or pending[0][0] > now:
            return False
        while pending and pending[0][0] <= now:
            at, state = pending.pop(0)
            self.set_state(state, at, SYSTEM_USER)
        return True

    def set_state(self, state: str, at: float, actor: str) -> None:
        self.state = state
        self.history.append((state, at))
        self.touch(at, actor)
        if state == "done":
            self.completed_at, self.completed_by = at, REVIEWER_ID
        elif state == "doneAutomatically":
            self.completed_at, self.completed_by = at, SYSTEM_USER

    def touch(self, at: float, actor: str) -> None:
        self.updated_at = max(self.updated_at, at)
        self.updated_by = actor
        self._body = None

    def next_change(self) -> float | None:
        return self.pending[0][0] if self.pending else None

    def view(self) -> dict[str, Any]:
        """The document as GET /documents/{id} shows it (DocumentResponse plus live `files`)."""
        data: dict[str, Any] = {
            "id": self.id,
            "title": self.title,
            "projectId": self.project_id,
            "fileId": self.file_id,
            "files": [{"id": self.file_id, "type": "original", "mainFile": True}],
            "state": self.state,
            "createdAt": iso(self.created_at),
            "createdBy": self.created_by,
            "updatedAt": iso(self.updated_at),
            "updatedBy": self.updated_by,
            "externalData": dict(self.external_data),
            "entities": invoice_entities(self.id, self.created_at) if self.state in WITH_ENTITIES else {},
        }
        if self.external_id is not None:
            data["externalId"] = self.external_id
        if self.completed_at is not None:
            data["completedAt"] = iso(self.completed_at)
            data["completedBy"] = self.completed_by
        return data

    def body(self) -> bytes:
        """Serialized view, cached until the document changes (the hot path of polling clients)."""
        if self._body is None:
            self._body = json_bytes(self.view())
        return self._body

    def states(self) -> list[dict[str, str]]:
        return [{"state": state, "updatedAt": iso(at)} for state, at in self.history]


def plan(
    settings: Settings, completion: str, rng: random.Random, start: float, duplicate: bool
) -> list[tuple[float, str]]:
    """Future state changes of a freshly processed document, by the project's completion setting."""
    t = start + settings.new_s
    steps = [(t, "processing")]
    t += settings.processing_s
    roll = rng.random()
    if duplicate or roll < settings.failure_rate:
        return [*steps, (t, "failed")]
    if roll < settings.failure_rate + settings.junk_rate:
        return [*steps, (t, "junk")]
    if completion == "automatic":
        return [*steps, (t, "extracted"), (t + settings.extracted_s, "doneAutomatically")]
    steps.append((t, "reviewRequired"))
    if settings.review_s is not None:
        steps.append((t + settings.review_s, "done"))
    return steps


def path_to(state: str, completion: str) -> list[str]:
    """States a document passes on its way to `state` (for seeding documents in a given state)."""
    finished = ["extracted", "doneAutomatically"] if completion == "automatic" else ["reviewRequired", "done"]
    paths: dict[str, list[str]] = {
        "new": [],
        "processing": ["processing"],
        "extracted": ["processing", "extracted"],
        "reviewRequired": ["processing", "reviewRequired"],
        "inCompletion": ["processing", "reviewRequired", "inCompletion"],
        "done": ["processing", "reviewRequired", "done"],
        "doneAutomatically": ["processing", "extracted", "doneAutomatically"],
        "rejected": ["processing", "reviewRequired", "rejected"],
        "transferred": ["processing", *finished, "transferred"],
        "transferFailed": ["processing", *finished, "transferFailed"],
    }
    return paths.get(state, ["processing", state])
