"""The shared wait of a project: one listing serves every awaited document, and only when it is stale."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

from tasks.document_watch import PAGE_SIZE, ProjectWatch, Verdict
from worker.state_store import MemoryStateStore


class FakeProject:
    """`documentsList` pages over documents `(id, created at)`, newest first; counts the pages asked for."""

    def __init__(self, documents: list[tuple[str, float]]) -> None:
        self.documents = sorted(documents, key=lambda d: -d[1])
        self.pages: list[dict[str, Any]] = []

    async def list_page(self, params: dict[str, Any]) -> dict[str, Any]:
        self.pages.append(params)
        await asyncio.sleep(0)
        offset = params["offset"]
        page = self.documents[offset : offset + params["limit"]]
        items = [{"id": i, "createdAt": datetime.fromtimestamp(t, UTC).isoformat()} for i, t in page]
        return {"data": items, "totalCount": len(self.documents), "offset": offset, "limit": params["limit"]}


def _watch(store: MemoryStateStore, fresh_s: float = 60.0) -> ProjectWatch:
    return ProjectWatch(store, "main", "p1", ["new", "processing"], fresh_s=fresh_s, forget_after_s=600)


def test_given_many_waiting_documents_then_one_listing_answers_them_all() -> None:
    now = time.time()
    project = FakeProject([("d1", now - 10), ("d2", now - 10)])  # d3 is ready: not listed
    store = MemoryStateStore(ttl_s=600)

    async def test() -> list[Verdict]:
        watch = _watch(store)
        first = await watch.check("d1", now - 10, now - 10, project.list_page)
        rest = [await watch.check(d, now - 10, now - 10, project.list_page) for d in ("d2", "d3")]
        return [first, *rest]

    assert asyncio.run(test()) == [Verdict.WAITING, Verdict.WAITING, Verdict.ARRIVED]
    assert len(project.pages) == 1
    assert project.pages[0]["state"] == ["new", "processing"] and project.pages[0]["sort"] == "-createdAt"


def test_given_concurrent_returns_to_a_stale_snapshot_then_one_refreshes_and_the_others_come_back_soon() -> (
    None
):
    now = time.time()
    project = FakeProject([(f"d{i}", now - 10) for i in range(5)])
    store = MemoryStateStore(ttl_s=600)

    async def test() -> list[Verdict]:
        watch = _watch(store)
        return list(
            await asyncio.gather(
                *(watch.check(f"d{i}", now - 10, now - 10, project.list_page) for i in range(5))
            )
        )

    verdicts = asyncio.run(test())

    assert sorted(v.value for v in verdicts) == ["busy"] * 4 + ["waiting"]
    assert len(project.pages) == 1


def test_given_a_snapshot_older_than_the_last_fetch_then_it_does_not_count_as_ready() -> None:
    now = time.time()
    project = FakeProject([])
    store = MemoryStateStore(ttl_s=600)

    async def test() -> list[Verdict]:
        watch = _watch(store, fresh_s=0.0)
        ready = await watch.check("d1", now - 10, now - 10, project.list_page)
        # a fetch then found it not ready: the snapshot from before that fetch no longer counts
        project.documents = [("d1", now - 10)]
        again = await watch.check("d1", now - 10, time.time(), project.list_page)
        return [ready, again]

    assert asyncio.run(test()) == [Verdict.ARRIVED, Verdict.WAITING]
    assert len(project.pages) == 2


def test_given_a_long_project_history_then_listing_stops_at_the_oldest_awaited_document() -> None:
    now = time.time()
    history = [(f"old{i}", now - 7200 - i) for i in range(500)]  # stuck in review for hours
    project = FakeProject([("d1", now - 5), *history])
    store = MemoryStateStore(ttl_s=600)

    async def test() -> Verdict:
        return await _watch(store).check("d1", now - 5, now - 5, project.list_page)

    assert asyncio.run(test()) is Verdict.WAITING
    assert len(project.pages) == 1 and len(history) > PAGE_SIZE
