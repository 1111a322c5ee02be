"""What a ``processDocument`` request has done so far, kept between its deliveries.

The journey of one request (connection and id) lives in the state store (`worker.state_store`) under
``journey:<connection>:<id>``: the file id once the upload answered, the document id once processing
was requested, when each happened, how many API calls each step cost and how long it took.  Every
delivery reads it first and writes it as soon as a step has an outcome, so a redelivery, a restart or
a resubmission goes on from the last step that finished and never repeats one that did.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import orjson

from worker.state_store import StateStore, scoped_key

#: The steps of a journey, in order; calls and times are counted per step.
STEPS = ("upload", "process", "poll", "fetch")


def _per_step() -> dict[str, float]:
    return dict.fromkeys(STEPS, 0.0)


@dataclass
class Journey:
    """One request's progress; see the module docstring.  Times are unix seconds."""

    #: When the journey began (first delivery that did something).
    started_at: float = field(default_factory=time.time)
    #: Start of the current deadline window (reset when a timeout was answered, so a resubmission
    #: gets a window of its own).
    window_started_at: float | None = None
    #: Uploads begun; more than one only when an earlier one was cut off before its answer was kept.
    uploads: int = 0
    file_id: str | None = None
    #: When processing was first requested (what an interrupted request is reconciled against).
    process_started_at: float | None = None
    document_id: str | None = None
    #: When the document id was known: the document exists from then on.
    processed_at: float | None = None
    #: When the document was first seen in a wanted state.
    arrived_at: float | None = None
    #: When a fetch last found the document not ready after all (a snapshot must be newer to count).
    fetched_at: float | None = None
    #: The last state seen.
    state: str | None = None
    #: Times the request went back to the broker to wait for the document.
    waits: int = 0
    #: Times it went back after a transient failure (429, 5xx, timeouts, the state store).
    retries: int = 0
    #: API calls per step (retries included; token requests are not counted).
    calls: dict[str, float] = field(default_factory=_per_step)
    #: Milliseconds spent in each step's calls; the wait is `arrived_at` - `processed_at`.
    timings_ms: dict[str, float] = field(default_factory=_per_step)

    @property
    def api_calls(self) -> int:
        """API calls the journey made in all."""
        return int(sum(self.calls.values()))

    def to_json(self) -> bytes:
        """The stored form."""
        return orjson.dumps(asdict(self))

    @classmethod
    def from_json(cls, raw: bytes) -> Journey:
        """A stored journey (fields this version does not know are ignored)."""
        data = orjson.loads(raw)
        known = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in known})

    def summary(self, now: float) -> dict[str, Any]:
        """The ids so far, the state, the calls and the step times, as a result's data reports them."""
        wait_ms = 0.0
        if self.processed_at is not None:
            wait_ms = ((self.arrived_at or now) - self.processed_at) * 1000
        timings = {step: round(self.timings_ms.get(step, 0.0), 1) for step in ("upload", "process", "fetch")}
        timings["wait"] = round(max(wait_ms, 0.0), 1)
        timings["total"] = round((now - self.started_at) * 1000, 1)
        return {
            "file_id": self.file_id,
            "document_id": self.document_id,
            "state": self.state,
            "uploads": self.uploads,
            "waits": self.waits,
            "api_calls": self.api_calls,
            "api_calls_by_step": {step: int(count) for step, count in self.calls.items()},
            "timings_ms": timings,
        }


class JourneyBook:
    """Reads and writes the journeys of one connection's requests."""

    def __init__(self, store: StateStore, connection: str) -> None:
        self._store = store
        self._connection = connection

    def _key(self, request_id: str) -> str:
        return scoped_key("journey", self._connection, request_id)

    async def load(self, request_id: str) -> Journey:
        """The request's journey so far, or a new one."""
        raw = await self._store.get(self._key(request_id))
        return Journey.from_json(raw) if raw else Journey()

    async def save(self, request_id: str, journey: Journey) -> None:
        """Keep `journey` (for ``HYPATOS_RESULT_TTL_S`` after this write)."""
        await self._store.put(self._key(request_id), journey.to_json())
