"""Where cached answers live: Redis (shared by every worker and node), or this process's memory
(the embedded default, no Redis configured).

Both offer the same three steps. ``lookup`` answers with the entry (a hit), or makes the caller
the *leader* of that key (it holds the single-flight lock and goes upstream), or a *follower*
(another caller holds the lock). A follower ``follow``s: it waits, bounded, for the leader's entry,
and is released at once when the leader gives up the lock without one. The leader ``fill``s the
entry, which takes the lock's place, or ``release``s the lock when its answer failed. With Redis
the lookup and the release are scripts and the fill one plain ``SET``, which the stage sends on
its call's store batch and its settle queue (see the stage's docstring); only the follower's polls
go on their own.

With Redis the lock lives in the entry's own key, as a value no entry can be (:data:`LOCK`, then
the leader's token), with the lock's lease as its expiry: a lookup reads that one key, and the
fill, a ``SET`` of the entry over the lock, drops the lock with it. A separate lock key cost a
``DEL`` more per miss, on this worker (packed, sent, its reply read) and in Redis. The fill is no
script: a script costs Redis about as much again as the commands it runs. So the entry, once
written, is all anyone reads, whoever held the lock: a leader that outlived its lock's lease and
a second leader both write it, the later one's answer staying; a release (a script) deletes the
key only while it still holds that leader's own lock.
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


#: What a locked entry's value starts with (the scripts' ``'\0'``): no stored entry does (an
#: entry is a MessagePack array, its first byte 0x9X). The leader's token follows it.
LOCK = b"\x00"

# KEYS: entry. ARGV: lock token ("" takes no lock), lock ms.
LOOKUP = """
local entry = redis.call('GET', KEYS[1])
if entry and string.byte(entry, 1) ~= 0 then return {1, entry, redis.call('PTTL', KEYS[1])} end
if ARGV[1] == '' then return {4} end
if not entry and redis.call('SET', KEYS[1], '\\0' .. ARGV[1], 'NX', 'PX', ARGV[2]) then return {2} end
return {3}
"""
# KEYS: entry.
POLL = """
local entry = redis.call('GET', KEYS[1])
if not entry then return {4} end
if string.byte(entry, 1) == 0 then return {3} end
return {1, entry}
"""
# KEYS: entry. ARGV: lock token.
RELEASE = """
if redis.call('GET', KEYS[1]) == '\\0' .. ARGV[1] then return redis.call('DEL', KEYS[1]) end
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
        self._lookup = pipeline.prepare(LOOKUP, [], [], 3, numkeys=1)
        self._release = pipeline.prepare(RELEASE, [], [], 2, numkeys=1)

    def lookup_command(self, key: str, token: str, lock_seconds: float) -> tuple[Any, ...]:
        """The lookup, to queue on the call's store batch (one round trip with the admission stages)."""
        return (self._lookup, self.prefix + key, token, max(1, int(lock_seconds * 1000)))

    def fill_command(self, key: str, data: bytes, ttl_seconds: int) -> tuple[Any, ...]:
        """Write the entry: over this caller's lock, if it took one, which goes with it."""
        return ("SET", self.prefix + key, data, "PX", ttl_seconds * 1000)

    def release_command(self, key: str, token: str) -> tuple[Any, ...]:
        return (self._release, self.prefix + key, token)

    async def follow(self, key: str, seconds: float) -> tuple[Found, bytes | None]:
        """Poll for the leader's entry: every 5 ms at first, backing off to 100 ms."""
        keys = [self.prefix + key]
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
