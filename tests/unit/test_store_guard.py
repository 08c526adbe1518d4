"""The store guard against a real Redis client: a dead server costs one timeout per window, not
one per call, and the guard closes again once the server answers."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis.asyncio as redis

from junction.plugins.store_guard import GuardedConfig, StoreGuard, StoreUnavailable

LIVE = "redis://127.0.0.1:6379/6"
DEAD = "redis://127.0.0.1:1/0"  # nothing listens on port 1


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_a_dead_store_is_tried_once_per_window_then_probed_again() -> None:
    clock = Clock()
    guard = StoreGuard("rate-limit", GuardedConfig(store_timeout_seconds=0.5, store_retry_seconds=5), clock)
    client = redis.Redis.from_url(DEAD)
    calls = 0

    async def ping() -> bool:
        nonlocal calls
        calls += 1
        return await client.ping()

    try:
        with pytest.raises(StoreUnavailable):
            await guard.run(ping)
        started = time.perf_counter()
        for _ in range(100):
            with pytest.raises(StoreUnavailable):
                await guard.run(ping)
        assert time.perf_counter() - started < 0.05  # skipped without touching the network
        assert (calls, guard.failures, guard.skipped, guard.healthy) == (1, 1, 100, False)
        clock.now += 5
        with pytest.raises(StoreUnavailable):
            await guard.run(ping)
        assert calls == 2  # one probe after the window
    finally:
        await client.aclose()


async def test_the_guard_closes_when_the_store_answers_again() -> None:
    clock = Clock()
    guard = StoreGuard("budget", GuardedConfig(store_retry_seconds=1), clock)
    dead, live = redis.Redis.from_url(DEAD), redis.Redis.from_url(LIVE)
    try:
        with pytest.raises(StoreUnavailable):
            await guard.run(dead.ping)
        clock.now += 1
        assert await guard.run(live.ping) is True
        assert guard.healthy
    finally:
        await dead.aclose()
        await live.aclose()


async def test_a_slow_call_counts_as_failed_after_the_timeout() -> None:
    guard = StoreGuard("cache", GuardedConfig(store_timeout_seconds=0.05, on_store_error="closed"))
    started = time.perf_counter()
    with pytest.raises(StoreUnavailable):
        await guard.run(lambda: asyncio.sleep(0.3))  # a store that answers too late
    assert time.perf_counter() - started < 0.25
    refusal = guard.refusal()
    assert (refusal.status, refusal.code, refusal.headers["Retry-After"]) == (503, "store_unavailable", "5")
