"""Where the semantic cache keeps its entries and counters: Redis when ``[stores] cache`` is Redis
(shared by every worker and node), else this process's memory.

Entries of one scope are a capped list (newest first) under one key that expires ``ttl`` after
the last store; each entry also carries its own time, so an old one is never served. Counters
and shadow samples are per org."""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from typing import Any

import msgspec

from junction.plugins.store_guard import StoreGuard

COUNTERS = ("lookups", "hits", "misses", "refused", "shadow_hits", "shadow_agreed", "stored", "skipped")


class Entry(msgspec.Struct, array_like=True):
    stored_at: float
    question: str
    #: Unit-length float32 embedding of ``question``.
    vector: bytes
    #: The answer (a msgpack-encoded ChatResponse).
    answer: bytes


class Sample(msgspec.Struct, kw_only=True):
    """One shadow hit: what would have been served, and whether it agreed with the fresh answer."""

    at: float
    question: str
    cached_question: str
    similarity: float
    agreed: bool
    answer_similarity: float


_entry = msgspec.msgpack.Encoder()
_entries = msgspec.msgpack.Decoder(Entry)
_samples = msgspec.json.Decoder(Sample)


class RedisEntries:
    def __init__(self, redis: Any, prefix: str, guard: StoreGuard) -> None:
        self._redis, self._prefix, self._guard = redis, prefix, guard

    async def entries(self, scope: str) -> list[Entry]:
        raw = await self._guard.run(lambda: self._redis.lrange(f"{self._prefix}{scope}", 0, -1))
        return [_entries.decode(item) for item in raw]

    async def add(self, scope: str, entry: Entry, ttl: int, keep: int) -> None:
        key = f"{self._prefix}{scope}"

        async def store() -> None:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.lpush(key, _entry.encode(entry)).ltrim(key, 0, keep - 1).expire(key, ttl)
                await pipe.execute()

        await self._guard.run(store)

    async def count(self, org: str, counts: dict[str, int]) -> None:
        key = f"{self._prefix}stats:{org}"

        async def add() -> None:
            async with self._redis.pipeline(transaction=False) as pipe:
                for name, value in counts.items():
                    pipe.hincrby(key, name, value)
                await pipe.execute()

        await self._guard.run(add)

    async def sample(self, org: str, sample: Sample, keep: int) -> None:
        key = f"{self._prefix}samples:{org}"

        async def add() -> None:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.lpush(key, msgspec.json.encode(sample)).ltrim(key, 0, keep - 1)
                await pipe.execute()

        await self._guard.run(add)

    async def stats(self, org: str) -> tuple[dict[str, int], list[Sample]]:
        counts = await self._guard.run(lambda: self._redis.hgetall(f"{self._prefix}stats:{org}"))
        samples = await self._guard.run(lambda: self._redis.lrange(f"{self._prefix}samples:{org}", 0, -1))
        return ({k.decode() if isinstance(k, bytes) else k: int(v) for k, v in counts.items()},
                [_samples.decode(item) for item in samples])


class MemoryEntries:
    def __init__(self, max_scopes: int) -> None:
        self._scopes: OrderedDict[str, tuple[float, deque[Entry]]] = OrderedDict()
        self._max_scopes = max_scopes
        self._counts: dict[str, dict[str, int]] = {}
        self._samples: dict[str, deque[Sample]] = {}

    async def entries(self, scope: str) -> list[Entry]:
        found = self._scopes.get(scope)
        if found is None or found[0] < time.monotonic():
            return []
        self._scopes.move_to_end(scope)
        return list(found[1])

    async def add(self, scope: str, entry: Entry, ttl: int, keep: int) -> None:
        found = self._scopes.get(scope)
        items = found[1] if found is not None and found[0] >= time.monotonic() else deque(maxlen=keep)
        items.appendleft(entry)
        self._scopes[scope] = (time.monotonic() + ttl, items)
        self._scopes.move_to_end(scope)
        while len(self._scopes) > self._max_scopes:
            self._scopes.popitem(last=False)

    async def count(self, org: str, counts: dict[str, int]) -> None:
        mine = self._counts.setdefault(org, {})
        for name, value in counts.items():
            mine[name] = mine.get(name, 0) + value

    async def sample(self, org: str, sample: Sample, keep: int) -> None:
        self._samples.setdefault(org, deque(maxlen=keep)).appendleft(sample)

    async def stats(self, org: str) -> tuple[dict[str, int], list[Sample]]:
        return dict(self._counts.get(org, {})), list(self._samples.get(org, ()))
