"""The per-worker cache of org records (provider credentials, bridges): the calls that find an
entry missing or expired together share one store read (on the embedded default entries live a
second, and under load each such call used to read the store, each on a connection of its own); a
change drops the entry and is not answered by a read begun before it; a failed read fails its
waiters and the next call reads again; a caller that gives up does not cancel the others' read."""

from __future__ import annotations

import asyncio

import pytest

from junction.domain.invalidation import OrgCache


class Store:
    """Counts reads; each takes ``delay`` seconds and answers the current ``value``."""

    def __init__(self, value: str = "v1", delay: float = 0.05) -> None:
        self.value, self.delay, self.reads, self.fail = value, delay, 0, False

    async def read(self) -> str:
        self.reads += 1
        answer = self.value
        await asyncio.sleep(self.delay)
        if self.fail:
            raise ConnectionError("the store is down")
        return answer


async def test_calls_that_find_an_entry_missing_or_expired_together_share_one_read() -> None:
    cache: OrgCache[str] = OrgCache("credential", None, ttl=0.2)
    store = Store()
    values = await asyncio.gather(*(cache.get("org_1", "openai", store.read) for _ in range(32)))
    assert values == ["v1"] * 32 and store.reads == 1
    assert await cache.get("org_1", "openai", store.read) == "v1" and store.reads == 1  # cached
    await asyncio.sleep(0.25)  # expired
    store.value = "v2"
    values = await asyncio.gather(*(cache.get("org_1", "openai", store.read) for _ in range(32)))
    assert values == ["v2"] * 32 and store.reads == 2
    other = await cache.get("org_2", "openai", store.read)  # another key reads for itself
    assert other == "v2" and store.reads == 3


async def test_a_change_is_not_answered_by_a_read_begun_before_it() -> None:
    cache: OrgCache[str] = OrgCache("credential", None, ttl=300)
    store = Store(delay=0.1)
    before = asyncio.ensure_future(cache.get("org_1", "openai", store.read))
    await asyncio.sleep(0.02)  # its read is under way
    store.value = "rotated"
    cache.forget()  # the change arrives
    after = await cache.get("org_1", "openai", store.read)
    assert after == "rotated" and store.reads == 2
    assert await before == "v1"  # its own read, used once
    assert await cache.get("org_1", "openai", store.read) == "rotated" and store.reads == 2  # not overwritten


async def test_a_failed_read_fails_its_waiters_and_the_next_call_reads_again() -> None:
    cache: OrgCache[str] = OrgCache("credential", None, ttl=300)
    store = Store()
    store.fail = True
    results = await asyncio.gather(*(cache.get("org_1", "openai", store.read) for _ in range(5)),
                                   return_exceptions=True)
    assert all(isinstance(result, ConnectionError) for result in results) and store.reads == 1
    store.fail = False
    assert await cache.get("org_1", "openai", store.read) == "v1" and store.reads == 2


async def test_a_caller_that_gives_up_leaves_the_read_to_the_others() -> None:
    cache: OrgCache[str] = OrgCache("credential", None, ttl=300)
    store = Store(delay=0.1)
    leaving = asyncio.ensure_future(cache.get("org_1", "openai", store.read))
    staying = asyncio.ensure_future(cache.get("org_1", "openai", store.read))
    await asyncio.sleep(0.02)
    leaving.cancel()
    with pytest.raises(asyncio.CancelledError):
        await leaving
    assert await staying == "v1" and store.reads == 1
