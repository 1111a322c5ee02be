"""An attempt's hold on its request, renewed in the background for as long as it runs.

`LeaseKeeper.attempt` claims the request in the result store (see `worker.result_store.ClaimState`)
and releases the lease at the end, keeping the "started" marker only when the attempt says it may
have created something without knowing.  One renewal task per process renews every lease it holds
every third of the lease's length (not one task per request).  A worker that dies stops renewing;
its leases lapse within ``HYPATOS_CLAIM_LEASE_S`` and the next delivery takes over.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import structlog

from worker.result_store import ClaimState, RequestKey, ResultStore

log = structlog.get_logger(__name__)


@dataclass
class Attempt:
    """What the claim found, and whether the attempt leaves an uncertain outcome behind."""

    state: ClaimState
    #: When the first attempt of this request started (unix time).
    started_at: float
    #: The stored result, when the state is ``STORED``.
    stored: bytes | None = None
    #: Set when the attempt may have created something without learning the outcome.
    keep_started: bool = False


class LeaseKeeper:
    """Claims requests for attempts and keeps their leases alive; one per process."""

    def __init__(self, store: ResultStore, lease_s: float) -> None:
        self.store = store
        self.lease_s = lease_s
        self._held: dict[RequestKey, str] = {}
        self._renewer: asyncio.Task[None] | None = None

    @contextlib.asynccontextmanager
    async def attempt(self, key: RequestKey) -> AsyncIterator[Attempt]:
        """Claim `key` for this attempt; a claim that took no lease is yielded with nothing to release."""
        owner = uuid.uuid4().hex
        claim = await self.store.claim(key, owner, self.lease_s)
        attempt = Attempt(claim.state, claim.started_at, claim.stored)
        if claim.state not in (ClaimState.NEW, ClaimState.RESUMED):
            yield attempt
            return
        self._held[key] = owner
        self._ensure_renewer()
        try:
            yield attempt
        finally:
            self._held.pop(key, None)
            await self.store.finish(key, owner, keep_started=attempt.keep_started)

    def _ensure_renewer(self) -> None:
        if self._renewer is None or self._renewer.done():
            self._renewer = asyncio.get_running_loop().create_task(self._renew_forever())

    async def _renew_forever(self) -> None:
        while True:
            await asyncio.sleep(self.lease_s / 3)
            for key, owner in list(self._held.items()):
                try:
                    await self.store.renew(key, owner, self.lease_s)
                except Exception:  # one failed renewal must not stop the others
                    log.exception("lease_renewal_failed")

    async def close(self) -> None:
        """Stop renewing (the process is ending; its leases lapse)."""
        if self._renewer is not None:
            self._renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewer
