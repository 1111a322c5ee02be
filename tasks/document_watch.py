"""Waiting for documents in batches: one list call serves every document awaited in a project.

A naive pipeline asks ``documentsGetById`` for each document at each poll, which costs the account's
quota per document per round.  Here every request waiting on documents of one project (same
connection, same wanted states) shares a *snapshot* kept in the state store: the ids of the
project's documents that are **not** yet in a wanted state, listed with ``documentsList``
(``projectId``, ``state`` = each unwanted state, ``sort=-createdAt``, pages of 50), and the time it
was taken.  The listing stops at documents created before the oldest document still awaited in the
project (less `CLOCK_SKEW_S`, since Hypatos' clock is not ours), so its length follows the documents
in flight, not the project's history.

- A snapshot younger than ``HYPATOS_POLL_INITIAL_S`` is reused by every request that comes back.
- An older one is refreshed by one request, holding a short lock; the others come back a little later.
- A document absent from a snapshot taken after its processing was requested was in a wanted state
  when it was taken (or no longer exists): only then is it fetched, once.  Wanted states are closed
  upwards (`tasks.pipeline.wanted_states`), so a document cannot leave them again by itself.

The oldest awaited document comes from a ranking per (connection, project): each waiting request
ranks its document by the time processing was requested, refreshes it each time it comes back, and
removes it when its wait is over; a request that never comes back is forgotten after a while.
"""

from __future__ import annotations

import enum
import hashlib
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime
from typing import Any

from tasks.creation import CLOCK_SKEW_S
from worker.state_store import Membership, StateStore, scoped_key

#: Documents per list page (the API's largest page).
PAGE_SIZE = 50
#: How long a refresh may hold the lock before another request may take over.
REFRESH_LOCK_S = 30.0
#: How soon a request comes back when another one is refreshing the snapshot.
BUSY_RETRY_S = 2.0

#: Lists one page: (params of ``documentsList``) -> the decoded envelope; counts the call.
ListPage = Callable[[dict[str, Any]], Awaitable[Any]]


class Verdict(enum.Enum):
    """What the snapshot says about one awaited document."""

    ARRIVED = "arrived"  # in a wanted state (or gone): fetch it
    WAITING = "waiting"  # not yet: come back after the request's own interval
    BUSY = "busy"  # another request is refreshing the snapshot: come back soon


def _created_at(item: Any) -> float | None:
    try:
        return datetime.fromisoformat(str(item.get("createdAt")).replace("Z", "+00:00")).timestamp()
    except (AttributeError, ValueError):
        return None


def _verdict(seen: Membership, after: float) -> Verdict:
    if seen.taken_at <= after or seen.member:
        return Verdict.WAITING
    return Verdict.ARRIVED


class ProjectWatch:
    """The shared wait for one connection's documents of one project, awaited for the same states."""

    def __init__(
        self,
        store: StateStore,
        connection: str,
        project_id: str,
        unwanted: Iterable[str],
        *,
        fresh_s: float,
        forget_after_s: float,
    ) -> None:
        self._store = store
        self._project_id = project_id
        self._unwanted = sorted(unwanted)
        self._fresh_s = fresh_s
        self._forget_after_s = forget_after_s
        states = hashlib.sha256(",".join(self._unwanted).encode()).hexdigest()[:12]
        self._ranking = scoped_key("awaited", connection, project_id)
        self._snapshot = scoped_key("snapshot", connection, project_id, states)
        self._lock = scoped_key("snapshot-lock", connection, project_id, states)

    async def check(
        self, document_id: str, processed_at: float, after: float, list_page: ListPage
    ) -> Verdict:
        """Whether `document_id` (processing requested at `processed_at`) is in a wanted state yet,
        by a snapshot taken after `after` (the processing request, or the last fetch that found the
        document not ready yet)."""
        if not self._unwanted:
            return Verdict.ARRIVED
        now = time.time()
        await self._store.rank(self._ranking, document_id, processed_at, now + self._forget_after_s)
        seen = await self._store.membership(self._snapshot, document_id)
        if seen is not None and (
            now - seen.taken_at < self._fresh_s or _verdict(seen, after) is Verdict.ARRIVED
        ):
            return _verdict(seen, after)
        owner = uuid.uuid4().hex
        if not await self._store.lock(self._lock, owner, REFRESH_LOCK_S):
            return Verdict.BUSY
        try:
            taken_at, members = await self._list(list_page, now)
            await self._store.replace_set(self._snapshot, members, taken_at)
        finally:
            await self._store.unlock(self._lock, owner)
        return _verdict(Membership(taken_at, document_id in members), after)

    async def done(self, document_id: str) -> None:
        """The wait for `document_id` is over (arrived, failed or given up)."""
        await self._store.unrank(self._ranking, document_id)

    async def _list(self, list_page: ListPage, now: float) -> tuple[float, set[str]]:
        oldest = await self._store.lowest(self._ranking, now)
        since = (oldest if oldest is not None else now) - CLOCK_SKEW_S
        taken_at = time.time()
        members: set[str] = set()
        offset = 0
        while True:
            params = {
                "projectId": [self._project_id],
                "state": self._unwanted,
                "sort": "-createdAt",
                "limit": PAGE_SIZE,
                "offset": offset,
            }
            envelope = await list_page(params)
            items = envelope.get("data") or [] if isinstance(envelope, dict) else []
            members.update(str(item.get("id")) for item in items if isinstance(item, dict))
            offset += len(items)
            total = envelope.get("totalCount") if isinstance(envelope, dict) else None
            last_created = _created_at(items[-1]) if items else None
            if len(items) < PAGE_SIZE or (isinstance(total, int) and offset >= total):
                break
            if last_created is not None and last_created < since:
                break
        return taken_at, members
