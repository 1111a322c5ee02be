"""The state store behaves the same in process memory and in Redis."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import redis

from worker.state_store import Membership, MemoryStateStore, RedisStateStore, StateStore, scoped_key


def _run(kind: str, redis_url: str | None, test: Callable[[StateStore], Awaitable[Any]]) -> Any:
    async def go() -> Any:
        if kind == "memory":
            return await test(MemoryStateStore(ttl_s=60))
        prefix = f"hypatos-test-{uuid.uuid4().hex[:10]}:"
        store = RedisStateStore.from_url(str(redis_url), ttl_s=60, prefix=prefix)
        try:
            return await test(store)
        finally:
            await store.close()
            client = redis.Redis.from_url(str(redis_url))
            keys = list(client.scan_iter(match=f"{prefix}*"))
            if keys:
                client.delete(*keys)

    return asyncio.run(go())


@pytest.fixture(params=["memory", "redis"])
def store_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def url(store_kind: str, request: pytest.FixtureRequest) -> str | None:
    return request.getfixturevalue("redis_url") if store_kind == "redis" else None


def test_given_values_then_they_are_read_back_replaced_and_forgotten(
    store_kind: str, url: str | None
) -> None:
    async def test(store: StateStore) -> list[Any]:
        seen = [await store.get("a")]
        await store.put("a", b"1")
        await store.put("a", b"2")
        seen.append(await store.get("a"))
        await store.delete("a")
        return [*seen, await store.get("a")]

    assert _run(store_kind, url, test) == [None, b"2", None]


def test_given_a_held_lock_then_only_its_owner_lets_it_go(store_kind: str, url: str | None) -> None:
    async def test(store: StateStore) -> list[bool]:
        taken = [await store.lock("l", "A", 30), await store.lock("l", "B", 30)]
        await store.unlock("l", "B")  # not B's: nothing changes
        taken.append(await store.lock("l", "B", 30))
        await store.unlock("l", "A")
        return [*taken, await store.lock("l", "B", 30)]

    assert _run(store_kind, url, test) == [True, False, False, True]


def test_given_a_stamped_set_then_membership_says_when_it_was_taken(store_kind: str, url: str | None) -> None:
    async def test(store: StateStore) -> list[Membership | None]:
        seen = [await store.membership("s", "d1")]
        await store.replace_set("s", ["d1", "d2"], 100.0)
        seen += [await store.membership("s", "d1"), await store.membership("s", "d3")]
        await store.replace_set("s", [], 200.0)
        return [*seen, await store.membership("s", "d1")]

    assert _run(store_kind, url, test) == [
        None,
        Membership(100.0, True),
        Membership(100.0, False),
        Membership(200.0, False),
    ]


def test_given_a_ranking_then_the_lowest_live_score_is_found_and_lapsed_members_forgotten(
    store_kind: str, url: str | None
) -> None:
    async def test(store: StateStore) -> list[float | None]:
        seen = [await store.lowest("r", now=0)]
        await store.rank("r", "old", 10.0, alive_until=50.0)
        await store.rank("r", "new", 20.0, alive_until=500.0)
        seen.append(await store.lowest("r", now=40))
        seen.append(await store.lowest("r", now=60))  # "old" did not come back in time
        await store.unrank("r", "new")
        return [*seen, await store.lowest("r", now=60)]

    assert _run(store_kind, url, test) == [None, 10.0, 20.0, None]


def test_given_connection_names_with_separators_then_their_keys_never_meet() -> None:
    assert scoped_key("journey", "a:b", "c") != scoped_key("journey", "a", "b:c")
