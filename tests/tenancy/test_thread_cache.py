"""Thread history in Redis stays exact under concurrency: a slow reader's outdated copy and a
concurrent turn never leave a stale thread in the cache (real Redis, real SQLite store)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from junction.domain.threads.history import ThreadHistory
from junction.schemas.chat import Message
from junction.security.crypto import Cipher, EncryptionKey
from junction.settings import ThreadSettings
from junction.stores.documents import open_document_store
from junction.stores.documents.protocol import DocumentStore

THREADS_REDIS_DB = 14
URL = f"redis://127.0.0.1:6379/{THREADS_REDIS_DB}"


@pytest.fixture
async def parts(tmp_path: Path) -> AsyncIterator[tuple[DocumentStore, ThreadHistory, str]]:
    client = aioredis.Redis.from_url(URL)
    await client.flushdb()
    store = open_document_store(
        f"sqlite+aiosqlite:///{tmp_path}/docs.db",
        cipher=Cipher([EncryptionKey(id="t", material=os.urandom(32))]),
    )
    await store.start()
    history = ThreadHistory(store.threads, client, ThreadSettings(history_messages=10))
    org = await store.orgs.create("Threads")
    yield store, history, org.id
    await store.close()
    await client.flushdb()
    await client.aclose()


def turn(text: str) -> list[Message]:
    return [Message(role="user", content=text), Message(role="assistant", content=f"re: {text}")]


async def test_turns_are_served_from_redis_without_the_store(parts) -> None:
    store, history, org_id = parts
    thread = await history.create(org_id, None)
    for text in ("one", "two"):
        thread = await history.get(org_id, thread.id)
        await history.append(org_id, thread, turn(text))
    await store.threads.delete(org_id, thread.id)  # behind the cache's back: the cache still answers
    cached = await history.get(org_id, thread.id)
    assert [m.content for m in cached.messages] == ["one", "re: one", "two", "re: two"]


async def test_a_slow_readers_outdated_copy_is_not_cached(parts) -> None:
    store, history, org_id = parts
    thread = await history.create(org_id, None)
    await history.append(org_id, thread, turn("one"))
    await history.forget(org_id, [thread.id])  # as if the cached copy expired
    cache = history._cache  # noqa: SLF001 - staging the race step by step
    missed, version = await cache.read(org_id, thread.id)
    assert missed is None
    outdated = await store.threads.get(org_id, thread.id)
    await history.append(org_id, outdated, turn("two"))  # another worker's turn lands meanwhile
    await cache.fill(outdated, version)  # the slow reader finishes: must not win
    current = await history.get(org_id, thread.id)
    assert current.message_count == 4 and [m.content for m in current.messages][-1] == "re: two"


async def test_concurrent_turns_leave_no_partial_copy(parts) -> None:
    _, history, org_id = parts
    thread = await history.create(org_id, None)
    seen_by_a = await history.get(org_id, thread.id)
    seen_by_b = await history.get(org_id, thread.id)
    await history.append(org_id, seen_by_a, turn("a"))
    await history.append(org_id, seen_by_b, turn("b"))  # b's view lacks a's turn
    current = await history.get(org_id, thread.id)
    assert current.message_count == 4
    assert sorted(m.content for m in current.messages if m.role == "user") == ["a", "b"]
