"""Where cached answers live: Redis (shared by every worker and node), or this process's memory
(the embedded default, no Redis configured).

Both offer the same three steps. ``lookup`` answers with the entry (a hit), or makes the caller
the *leader* of that key (it holds the single-flight lock and goes upstream), or a *follower*
(another caller holds the lock). A follower ``follow``s: it waits, bounded, for the leader's entry,
and is released at once when the leader gives up the lock without one. The leader ``fill``s the
entry and drops the lock, or ``release``s the lock when its answer failed. With Redis the lookup
and the release are scripts and the fill two plain commands, which the stage sends on its call's
store batch and its settle queue (see the stage's docstring); only the follower's polls go on
their own.

The fill is no script: a script costs Redis about as much again as the commands it runs (the
interpreter's set-up, and a reply parsed back into Lua per ``redis.call``), and the fill needs no
check before it drops the lock. Every lookup and poll reads the entry before the lock, so once the
entry is written no caller waits on the lock or takes it, whoever holds it. The lock dropped is
then either the leader's own or, when the leader outlived its lock's lease, a second leader's
that nobody reads any more (its followers find the entry on their next poll).
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from enum import Enum
from typing import Any

from junction.plugins.store_guard import StoreGuard


class Found(Enum):
    HIT = 1
    LEAD = 2
    FOLLOW = 3
    #: The lock is gone and no entry was written: the leader failed (or single-flight is off).
    RELEASED = 4


# KEYS: entry, lock. ARGV: lock token ("" takes no lock), lock ms.
LOOKUP = """
local entry = redis.call('GET', KEYS[1])
if entry then return {1, entry, redis.call('PTTL', KEYS[1])} end
if ARGV[1] == '' then return {4} end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return {2} end
return {3}
"""
# KEYS: entry, lock.
POLL = """
local entry = redis.call('GET', KEYS[1])
if entry then return {1, entry} end
if redis.call('EXISTS', KEYS[2]) == 1 then return {3} end
return {4}
"""
# KEYS: lock. ARGV: lock token.
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


#: A script's answer code -> what it found: a tuple index, not ``Found(code)``, whose enum lookup
#: cost more than the rest of reading a lookup's reply (once a call).
_FOUND = (None, Found.HIT, Found.LEAD, Found.FOLLOW, Found.RELEASED)


def found(result: Any) -> tuple[Found, bytes | None]:
    """A LOOKUP/POLL script's reply as (what, entry)."""
    return _FOUND[result[0]], (result[1] if len(result) > 1 else None)  # type: ignore[return-value]


def remaining_seconds(result: Any) -> float:
    """How long the entry a LOOKUP found has left (0 when unknown)."""
    return max(0, int(result[2])) / 1000 if len(result) > 2 else 0.0


class RedisCache:
    def __init__(self, redis: Any, prefix: str, guard: StoreGuard) -> None:
        self.redis = redis
        self.prefix = prefix
        self.guard = guard
        self._poll = redis.register_script(POLL)
        self._lookup = self._release = None

    def shas(self, pipeline: Any) -> None:
        """Send the scripts through ``pipeline`` (a PipelinedRedis), packed once up to their keys."""
        self._lookup = pipeline.prepare(LOOKUP, [], [], 4, numkeys=2)
        self._release = pipeline.prepare(RELEASE, [], [], 2, numkeys=1)

    def keys(self, key: str) -> list[str]:
        entry = self.prefix + key
        return [entry, entry + ":lock"]

    def lookup_command(self, key: str, token: str, lock_seconds: float) -> tuple[Any, ...]:
        """The lookup, to queue on the call's store batch (one round trip with the admission stages)."""
        entry = self.prefix + key
        return (self._lookup, entry, entry + ":lock", token, max(1, int(lock_seconds * 1000)))

    def fill_commands(self, key: str, data: bytes, ttl_seconds: int, token: str) -> list[tuple[Any, ...]]:
        """Write the entry, then drop the single-flight lock when this caller took it (see the
        module docstring: no check needed)."""
        entry = self.prefix + key
        fill: list[tuple[Any, ...]] = [("SET", entry, data, "PX", ttl_seconds * 1000)]
        if token:
            fill.append(("DEL", entry + ":lock"))
        return fill

    def release_command(self, key: str, token: str) -> tuple[Any, ...]:
        return (self._release, self.prefix + key + ":lock", token)

    async def follow(self, key: str, seconds: float) -> tuple[Found, bytes | None]:
        """Poll for the leader's entry: every 5 ms at first, backing off to 100 ms."""
        keys = self.keys(key)
        deadline = time.monotonic() + seconds
        delay = 0.005
        while True:
            await asyncio.sleep(min(delay, max(0.0, deadline - time.monotonic())))
            what, entry = found(await self.guard.run(lambda: self._poll(keys=keys)))
            if what is not Found.FOLLOW or time.monotonic() >= deadline:
                return what, entry
            delay = min(delay * 2, 0.1)


class MemoryCache:
    """One process's cache, for the embedded default: single-flight holds within the process only."""

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._leaders: dict[str, tuple[str, asyncio.Event]] = {}

    def lookup(self, key: str, token: str) -> tuple[Found, bytes | None]:
        stored = self._entries.get(key)
        if stored is not None:
            if stored[0] > time.monotonic():
                return Found.HIT, stored[1]
            del self._entries[key]
        if not token:
            return Found.RELEASED, None
        if key in self._leaders:
            return Found.FOLLOW, None
        self._leaders[key] = (token, asyncio.Event())
        return Found.LEAD, None

    async def follow(self, key: str, seconds: float) -> tuple[Found, bytes | None]:
        leader = self._leaders.get(key)
        if leader is not None:
            try:
                async with asyncio.timeout(seconds):
                    await leader[1].wait()
            except TimeoutError:
                return Found.FOLLOW, None
        what, entry = self.lookup(key, "")
        return (what, entry) if what is Found.HIT else (Found.RELEASED, None)

    async def fill(self, key: str, token: str, data: bytes, ttl_seconds: int) -> None:
        self._entries[key] = (time.monotonic() + ttl_seconds, data)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
        await self.release(key, token)

    async def release(self, key: str, token: str) -> None:
        leader = self._leaders.get(key)
        if leader is not None and leader[0] == token:
            del self._leaders[key]
            leader[1].set()
