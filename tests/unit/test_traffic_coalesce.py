"""Concurrent calls' store batches share Redis round trips (CoalescingRedis): each batch gets
its own results, in order; a single call goes at once; a dead store fails every batch of the
round trip, which each guard hears. Against the real Redis (DB 3, random keys) and a dead port."""

from __future__ import annotations

import asyncio
import secrets

import redis.asyncio as redis

from app.plugins.store_batch import StoreBatch
from app.plugins.store_guard import GuardedConfig, StoreGuard, StoreUnavailable
from app.traffic.coalesce import CoalescingRedis

LIVE = "redis://127.0.0.1:6379/3"


class CountingRedis(redis.Redis):
    round_trips = 0

    def pipeline(self, transaction: bool = True, shard_hint=None):
        self.round_trips += 1
        return super().pipeline(transaction, shard_hint)


async def test_concurrent_batches_share_round_trips_and_each_gets_its_own_results() -> None:
    client = CountingRedis.from_url(LIVE)
    shared = CoalescingRedis(client, timeout=5.0)
    guard = StoreGuard("coalesce", GuardedConfig(store_timeout_seconds=5.0))
    prefix = f"coalesce:{secrets.token_hex(4)}"
    heard: dict[int, list[object]] = {}

    async def one_call(index: int) -> None:
        batch = StoreBatch(shared)
        heard[index] = []
        batch.queue(guard, lambda pipe: pipe.incrby(f"{prefix}:{index}", index + 1), heard[index].append)
        batch.queue(guard, lambda pipe: pipe.incr(f"{prefix}:all"), heard[index].append)
        if index == 0:  # LPUSH on a string: this command fails, the others of the batch do not
            batch.queue(guard, lambda pipe: pipe.lpush(f"{prefix}:0", "x"), heard[index].append)
        else:
            batch.queue(guard, lambda pipe: pipe.get(f"{prefix}:{index}"), heard[index].append)
        await batch.flush()

    await asyncio.gather(*(one_call(index) for index in range(32)))

    assert client.round_trips < 32  # shared, not one per call
    assert sorted(value[1] for value in heard.values()) == list(range(1, 33))  # INCR of :all, each once
    for index in range(1, 32):
        assert heard[index][0] == index + 1 and heard[index][2] == str(index + 1).encode()
    assert isinstance(heard[0][2], Exception)  # an error stays with its own command
    single = StoreBatch(shared)
    got: list[object] = []
    before = client.round_trips
    single.queue(guard, lambda pipe: pipe.get(f"{prefix}:5"), got.append)
    await single.flush()
    assert got == [b"6"] and client.round_trips == before + 1
    await client.delete(*[f"{prefix}:{index}" for index in range(32)], f"{prefix}:all")
    await client.aclose()


async def test_a_dead_store_fails_every_batch_of_the_round_trip() -> None:
    client = redis.Redis.from_url("redis://127.0.0.1:1/0")
    shared = CoalescingRedis(client, timeout=1.0)
    guards = [StoreGuard(f"dead-{index}", GuardedConfig()) for index in range(5)]
    heard: list[object] = []

    async def one_call(guard: StoreGuard) -> None:
        batch = StoreBatch(shared)
        batch.queue(guard, lambda pipe: pipe.get("x"), heard.append)
        await batch.flush()

    await asyncio.gather(*(one_call(guard) for guard in guards))
    assert len(heard) == 5 and all(isinstance(value, StoreUnavailable) for value in heard)
    assert all(not guard.healthy and guard.failures == 1 for guard in guards)
    await client.aclose()
