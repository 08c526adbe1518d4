"""The single-flight lock in Redis, held in the entry's own key, on live Redis (DB 7, random keys):
one leader at a time, followers told so, a release that only drops its own leader's lock, and an
entry written over the lock ending the wait for everyone."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as redis

from junction.middleware.response_cache.backends import LOCK, LOOKUP, RELEASE, Found, RedisCache, found
from junction.middleware.response_cache.config import ResponseCacheConfig
from junction.plugins.store_guard import StoreGuard
from junction.stores.redis_pipeline import PipelinedRedis

LIVE = "redis://127.0.0.1:6379/7"


@pytest.fixture
async def cache() -> AsyncIterator[tuple[RedisCache, PipelinedRedis, Any]]:
    client = redis.Redis.from_url(LIVE)
    pipeline = PipelinedRedis(LIVE)
    pipeline.load(LOOKUP, RELEASE)
    prefix = f"cache-lock-{secrets.token_hex(4)}:"
    backend = RedisCache(client, prefix, StoreGuard("response-cache", ResponseCacheConfig()))
    backend.shas(pipeline)
    try:
        yield backend, pipeline, client
    finally:
        keys = [key async for key in client.scan_iter(f"{prefix}*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()
        await pipeline.aclose()


async def lookup(backend: RedisCache, pipeline: PipelinedRedis, token: str, lock_seconds: float = 5.0) -> Found:
    (reply,) = await pipeline.execute([backend.lookup_command("k", token, lock_seconds)])
    return found(reply)[0]


async def test_one_leader_then_followers_until_the_entry_replaces_the_lock(cache) -> None:
    backend, pipeline, client = cache
    assert await lookup(backend, pipeline, "leader") is Found.LEAD
    assert await lookup(backend, pipeline, "second") is Found.FOLLOW
    assert await lookup(backend, pipeline, "") is Found.RELEASED  # taking no lock (single-flight off): no wait
    assert await client.get(backend.prefix + "k") == LOCK + b"leader"
    assert 0 < await client.pttl(backend.prefix + "k") <= 5000  # the lock's lease, not the entry's TTL

    follower = asyncio.create_task(backend.follow("k", 5.0))
    await asyncio.sleep(0.02)
    await pipeline.execute([backend.fill_command("k", b"\x93answer", 60)])  # one SET: entry in, lock out
    assert await asyncio.wait_for(follower, 2.0) == (Found.HIT, b"\x93answer")
    (reply,) = await pipeline.execute([backend.lookup_command("k", "third", 5.0)])
    assert found(reply) == (Found.HIT, b"\x93answer")
    assert 55.0 < reply[2] / 1000 <= 60.0  # the entry's own TTL
    # a late release of the lock (the leader's answer failed after all) leaves the entry alone
    assert await pipeline.execute([backend.release_command("k", "leader")]) == [0]
    assert await client.get(backend.prefix + "k") == b"\x93answer"


async def test_a_release_drops_its_own_leaders_lock_only_and_frees_the_followers(cache) -> None:
    backend, pipeline, client = cache
    assert await lookup(backend, pipeline, "first", lock_seconds=0.05) is Found.LEAD
    await asyncio.sleep(0.1)  # the first leader outlived its lease: a second one leads
    assert await lookup(backend, pipeline, "second") is Found.LEAD
    assert await pipeline.execute([backend.release_command("k", "first")]) == [0]
    assert await lookup(backend, pipeline, "third") is Found.FOLLOW  # the second one's lock stands

    follower = asyncio.create_task(backend.follow("k", 5.0))
    await asyncio.sleep(0.02)
    assert await pipeline.execute([backend.release_command("k", "second")]) == [1]
    assert await asyncio.wait_for(follower, 2.0) == (Found.RELEASED, None)  # at once, not after 5 s
    assert await client.exists(backend.prefix + "k") == 0
    assert await lookup(backend, pipeline, "fourth") is Found.LEAD
