"""An attempt's hold on its request id, renewed in the background for as long as it runs.

`attempt_lease` claims the id in the result store (see `worker.result_store.ClaimState`), renews the
lease every third of its length while the attempt runs, and releases it at the end, keeping the
"started" marker only when the attempt says it may have created something without knowing.  A worker
that dies stops renewing; its lease lapses within ``HYPATOS_CLAIM_LEASE_S`` and the next delivery
takes over.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

from worker.result_store import ClaimState, ResultStore


@dataclass
class Attempt:
    """What the claim found, and whether the attempt leaves an uncertain outcome behind."""

    state: ClaimState
    #: When the first attempt of this request started (unix time).
    started_at: float
    #: Set when the attempt may have created something without learning the outcome.
    keep_started: bool = False


async def _renew_forever(store: ResultStore, request_id: str, owner: str, lease_s: float) -> None:
    while True:
        await asyncio.sleep(lease_s / 3)
        await store.renew(request_id, owner, lease_s)


@contextlib.asynccontextmanager
async def attempt_lease(store: ResultStore, request_id: str, lease_s: float) -> AsyncIterator[Attempt]:
    """Claim `request_id` for this attempt; a ``HELD`` claim is yielded as is, with nothing to release."""
    owner = uuid.uuid4().hex
    state, started_at = await store.claim(request_id, owner, lease_s)
    attempt = Attempt(state, started_at)
    if state is ClaimState.HELD:
        yield attempt
        return
    renewer = asyncio.create_task(_renew_forever(store, request_id, owner, lease_s))
    try:
        yield attempt
    finally:
        renewer.cancel()
        await store.finish(request_id, owner, keep_started=attempt.keep_started)
