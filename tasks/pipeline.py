"""``processDocument``: upload a file, process it into a document, wait for it, fetch it: one request.

Each delivery of the request goes as far as it can, keeping its journey (`tasks.journey`) in the
state store after every step that has an outcome:

1. *upload* (unless ``params.fileId`` names a file uploaded earlier): the file id is kept as soon as
   the answer arrives.  An upload cut off before that (a worker killed mid-call) is simply made
   again: an unprocessed file creates no document.
2. *process*: ``processFileIntoDocument`` into the project, with ``externalId``/``externalData``.  It
   is never sent blindly twice: when an earlier attempt may have reached Hypatos (interrupted, timed
   out), the document is looked for first by ``fileId`` and project (and ``externalId`` when given).
3. *wait*: the request goes back to the broker (``Deferral``, code ``waiting``) and comes again after
   ``HYPATOS_POLL_INITIAL_S``, growing by half each time up to ``HYPATOS_POLL_MAX_S``; nothing holds
   worker capacity meanwhile, and a restart loses nothing (with Redis).  Each time it comes back it
   asks the project's shared snapshot (`tasks.document_watch`), not the API.
4. *fetch*: once the document left the states it is not wanted in, ``documentsGetById`` (and
   ``retrieveDocumentStates`` with ``include: ["states"]``) once.

The result's ``data`` holds ``document``, ``document_id``, ``file_id``, ``state``, the API calls the
journey cost and how long each step took (`Journey.summary`).  Past ``options.deadline_s`` it fails
with ``timeout`` (retryable, with the ids so far): resubmitting the request goes on from there.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

import structlog

from tasks.catalog import CATALOG, DOCUMENT_STATES
from tasks.creation import FINDERS
from tasks.document_watch import BUSY_RETRY_S, ProjectWatch, Verdict
from tasks.files import prepare_upload
from tasks.journey import Journey, JourneyBook
from tasks.outcomes import Answer, Deferral
from tasks.pipeline_spec import DocumentSpec, parse_spec
from tasks.requests import build_request
from tasks.validation import validate
from worker.classify import MAY_HAVE_BEEN_PROCESSED
from worker.connections import Connection
from worker.errors import ErrorCode, HypatosError, PermanentError, TransientError
from worker.leases import Attempt
from worker.messages import FileInput, Request
from worker.retry import broker_delay_s
from worker.runtime import Services
from worker.transport import ApiResponse

log = structlog.get_logger(__name__)

#: The wait grows by this factor each time the request comes back to a document not yet ready.
POLL_GROWTH = 1.5
#: How long a waiting request's place in the project's ranking outlives its next return.
FORGET_MARGIN_S = 120.0


class DocumentJourney:
    """One delivery of one ``processDocument`` request; see the module docstring."""

    def __init__(
        self, services: Services, connection: Connection, request_id: str, spec: DocumentSpec
    ) -> None:
        settings = services.settings
        self.services = services
        self.connection = connection
        self.request_id = request_id
        self.spec = spec
        self.book = JourneyBook(services.state, connection.name)
        self.journey = Journey()
        self.watch = ProjectWatch(
            services.state,
            connection.name,
            spec.project_id,
            set(DOCUMENT_STATES) - spec.awaited,
            fresh_s=settings.poll_initial_s,
            forget_after_s=settings.poll_max_s + settings.claim_lease_s + FORGET_MARGIN_S,
        )

    @property
    def deadline_at(self) -> float:
        """When the current window ends."""
        return (self.journey.window_started_at or time.time()) + self.spec.options.deadline_s

    async def begin(self) -> None:
        """Read the journey so far and open a deadline window if none is open."""
        self.journey = await self.book.load(self.request_id)
        if self.journey.window_started_at is None:
            self.journey.window_started_at = time.time()

    async def save(self) -> None:
        await self.book.save(self.request_id, self.journey)

    async def call(
        self, step: str, name: str, params: dict[str, Any], body: Any = None, **options: Any
    ) -> ApiResponse:
        """One API call of `step`, counted and timed in the journey."""
        operation = CATALOG[name]
        upload = options.pop("upload", None)
        request = build_request(operation, validate(operation, params, body), body, upload=upload)
        started = time.perf_counter()
        attempts = 0
        try:
            response = await self.services.client.call(self.connection, request, **options)
            attempts = response.attempts
            return response
        except HypatosError as error:
            attempts = error.attempts
            raise
        finally:
            self.journey.calls[step] = self.journey.calls.get(step, 0) + attempts
            elapsed_ms = (time.perf_counter() - started) * 1000
            self.journey.timings_ms[step] = self.journey.timings_ms.get(step, 0.0) + elapsed_ms

    async def ensure_file(self, file: FileInput | None) -> None:
        """Step 1: a file id, uploading the file unless one is known."""
        if self.journey.file_id is not None:
            return
        if self.spec.file_id is not None:
            self.journey.file_id = self.spec.file_id
            return
        with prepare_upload(file, None, self.services.settings) as upload:
            self.journey.uploads += 1
            await self.save()  # a second upload shows in the journey if this one is cut off
            response = await self.call("upload", "uploadFile", {}, upload=upload)
        answer = response.decoded()
        if not isinstance(answer, dict) or not answer.get("id"):
            raise PermanentError("uploadFile answered without a file id", code=ErrorCode.UNEXPECTED_RESPONSE)
        self.journey.file_id = str(answer["id"])
        await self.save()
        log.info("document_file_uploaded", file_id=self.journey.file_id, uploads=self.journey.uploads)

    async def _find_document(self, body: dict[str, Any]) -> dict[str, Any] | None:
        since = self.journey.process_started_at or time.time()
        started = time.perf_counter()
        try:
            found = await FINDERS["processFileIntoDocument"](self.services, self.connection, body, since)
        finally:
            self.journey.calls["process"] += 1
            self.journey.timings_ms["process"] += (time.perf_counter() - started) * 1000
        log.info("creation_reconciled", found=found is not None)
        return found.decoded() if found is not None else None

    async def _request_processing(self, body: dict[str, Any]) -> dict[str, Any]:
        if self.journey.process_started_at is None:
            self.journey.process_started_at = time.time()
            await self.save()
        try:
            response = await self.call("process", "processFileIntoDocument", {}, body, replay_safe=False)
        except HypatosError as error:
            if error.code not in MAY_HAVE_BEEN_PROCESSED:
                self.journey.process_started_at = None  # answered: nothing was created
                raise
            found = await self._find_document(body)
            if found is None:
                raise
            return found
        answer = response.decoded()
        if not isinstance(answer, dict) or not answer.get("documentId"):
            raise PermanentError(
                "processFileIntoDocument answered without a document id", code=ErrorCode.UNEXPECTED_RESPONSE
            )
        return answer

    async def ensure_document(self) -> bool:
        """Step 2: a document id, requesting processing unless one is known; whether it was made now."""
        if self.journey.document_id is not None:
            return False
        assert self.journey.file_id is not None
        body = self.spec.process_body(self.journey.file_id)
        found = await self._find_document(body) if self.journey.process_started_at is not None else None
        answer = found or await self._request_processing(body)
        self.journey.document_id = str(answer["documentId"])
        self.journey.processed_at = time.time()
        await self.save()
        log.info("document_processing_requested", document_id=self.journey.document_id)
        return True

    async def _list_page(self, params: dict[str, Any]) -> Any:
        return (await self.call("poll", "documentsList", params)).decoded()

    async def wait(self, just_created: bool) -> Verdict:
        """Step 3: whether the document left the states it is not awaited in."""
        if just_created:
            return Verdict.WAITING
        journey = self.journey
        assert journey.document_id is not None and journey.processed_at is not None
        after = max(journey.processed_at, journey.fetched_at or 0.0)
        return await self.watch.check(journey.document_id, journey.processed_at, after, self._list_page)

    async def fetch(self) -> tuple[dict[str, Any], list[Any] | None]:
        """Step 4: the document (and its states when asked for)."""
        document_id = str(self.journey.document_id)
        document = (await self.call("fetch", "documentsGetById", {"id": document_id})).decoded()
        if not isinstance(document, dict):
            raise PermanentError(
                "documentsGetById answered without a document", code=ErrorCode.UNEXPECTED_RESPONSE
            )
        self.journey.state = str(document.get("state"))
        states = None
        if "states" in self.spec.options.include:
            states = (await self.call("fetch", "retrieveDocumentStates", {"id": document_id})).decoded()
        if "entities" not in self.spec.options.include:
            document.pop("entities", None)
        return document, states

    def defer(self, verdict: Verdict) -> Deferral:
        """The deferral that sends the request back to wait, or a timeout past the deadline."""
        now = time.time()
        if now >= self.deadline_at:
            raise self.timeout(f"the document did not reach {self.spec.options.wait_for} in time")
        if verdict is Verdict.BUSY:
            delay_s = BUSY_RETRY_S
        else:
            settings = self.services.settings
            delay_s = min(settings.poll_initial_s * POLL_GROWTH**self.journey.waits, settings.poll_max_s)
            self.journey.waits += 1
        return Deferral(min(delay_s, max(self.deadline_at - now, 1.0)), 0, "waiting")

    def timeout(self, why: str) -> HypatosError:
        """The failure past ``deadline_s``: retryable, with the ids so far (the journey is kept)."""
        error = HypatosError(
            f"processDocument deadline of {self.spec.options.deadline_s:.0f} s passed: {why}; "
            "resubmit the same request to go on from where it stopped",
            code=ErrorCode.TIMEOUT,
            retryable=True,
            data=self.journey.summary(time.time()),
        )
        error.attempts = self.journey.api_calls
        self.journey.window_started_at = None  # a resubmission gets a window of its own
        return error

    def failed(self, error: HypatosError) -> HypatosError:
        """A failure of a step, carrying the ids so far and Hypatos' answer."""
        error.data = {**self.journey.summary(time.time()), "response": error.data}
        error.attempts = self.journey.api_calls
        return error

    def retry_later(self, error: TransientError) -> Deferral | HypatosError:
        """A deferral after a transient failure within the deadline (the request retry budget does not
        apply: the deadline is this operation's budget), or the timeout past it."""
        now = time.time()
        if now >= self.deadline_at:
            return self.timeout(f"the last attempt failed: {error.message}")
        settings = self.services.settings
        delay_s = broker_delay_s(
            error, self.journey.retries, self.services.policy, settings.broker_wait_max_s
        )
        self.journey.retries += 1
        return Deferral(min(delay_s, max(self.deadline_at - now, 1.0)), 0, error.code)

    def answer(self, document: dict[str, Any], states: list[Any] | None) -> Answer:
        """The result: the document, the ids, the calls and times; `state_not_wanted` for a settled
        document in a state the request did not wait for."""
        data: dict[str, Any] = {**self.journey.summary(time.time()), "document": document}
        if states is not None:
            data["states"] = states
        if self.journey.state not in self.spec.wanted:
            wanted = ", ".join(self.spec.options.wait_for)
            error = PermanentError(
                f"the document settled in state {self.journey.state!r}, which is not waited for ({wanted})",
                code=ErrorCode.STATE_NOT_WANTED,
                data=data,
            )
            error.attempts = self.journey.api_calls
            raise error
        return Answer(http_status=200, data=data, attempts=self.journey.api_calls)

    async def finish(self) -> None:
        """Forget the document in the project's wait and keep the journey as it ends."""
        if self.journey.document_id is not None:
            await self.watch.done(self.journey.document_id)
        await self.save()

    async def run(self, file: FileInput | None) -> Answer:
        """Every step this delivery can take; raises `Deferral` to wait."""
        await self.ensure_file(file)
        just_created = await self.ensure_document()
        verdict = await self.wait(just_created)
        if verdict is Verdict.ARRIVED:
            document, states = await self.fetch()
            if self.journey.state in self.spec.awaited:
                self.journey.arrived_at = time.time()
                await self.finish()
                log.info("document_arrived", state=self.journey.state, api_calls=self.journey.api_calls)
                return self.answer(document, states)
            self.journey.fetched_at = time.time()  # not ready after all: wait for a newer snapshot
        deferral = self.defer(verdict)
        await self.save()
        raise deferral


#: Failures the journey raises itself, already carrying its summary.
_OWN_FAILURES = (ErrorCode.TIMEOUT, ErrorCode.STATE_NOT_WANTED)


async def _save_quietly(trip: DocumentJourney, code: str) -> None:
    try:
        await trip.save()
    except TransientError:
        log.warning("document_journey_not_saved", error_code=code)


async def run_process_document(
    services: Services, connection: Connection, request: Request, attempt: Attempt
) -> Answer:
    """``processDocument``; see the module docstring."""
    spec = parse_spec(request, services.settings.result_ttl_s)
    trip = DocumentJourney(services, connection, request.id, spec)
    await trip.begin()  # a state store that cannot be read: the request's own retry budget applies
    outcome: Deferral | HypatosError
    try:
        return await trip.run(request.file)
    except TransientError as error:
        outcome = trip.retry_later(error)
    except HypatosError as error:
        outcome = error if error.code in _OWN_FAILURES else trip.failed(error)
    if isinstance(outcome, Deferral):
        await _save_quietly(trip, outcome.code)
        raise outcome
    if trip.journey.document_id is not None:
        with contextlib.suppress(TransientError):  # forgotten anyway once it is not ranked again
            await trip.watch.done(trip.journey.document_id)
    await _save_quietly(trip, outcome.code)
    raise outcome
