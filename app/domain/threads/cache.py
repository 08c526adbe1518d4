"""Threads kept in Redis, so a conversation's next turn reads its history without the store.

Each thread has a data key (the msgpack-encoded :class:`Thread`) and a version key, bumped after
every append to the store. A copy read from the store is cached only if no append happened since
the read began (``WATCH`` on the version), and an append's updated copy only if no other append
came between — so a slow reader or a concurrent turn can never leave an outdated thread behind.
Redis failures degrade to reading the store; they are logged, never hidden.
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec

from junction.stores.documents.protocol import Thread

log = logging.getLogger("junction.threads")

DATA_PREFIX = "junction:thread:"
VERSION_PREFIX = "junction:thread-version:"
_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Thread)


class RedisThreadCache:
    """Over the process's shared Redis client (the Runtime opens and closes it)."""

    def __init__(self, redis: Any, ttl_seconds: int) -> None:
        self._redis = redis
        self._ttl = ttl_seconds

    @staticmethod
    def _keys(org_id: str, thread_id: str) -> tuple[str, str]:
        return f"{DATA_PREFIX}{org_id}:{thread_id}", f"{VERSION_PREFIX}{org_id}:{thread_id}"

    async def read(self, org_id: str, thread_id: str) -> tuple[Thread | None, bytes | None]:
        """The cached thread (or ``None``) and the version to pass to :meth:`fill` after a miss."""
        from redis.exceptions import RedisError

        data_key, version_key = self._keys(org_id, thread_id)
        try:
            raw, version = await self._redis.mget(data_key, version_key)
        except RedisError as error:
            log.warning("thread cache read failed (%s); reading the store", error)
            return None, None
        return (_decoder.decode(raw) if raw is not None else None), version

    async def fill(self, thread: Thread, seen_version: bytes | None) -> None:
        """Cache a copy read from the store, unless an append happened since ``seen_version``."""
        await self._set_if_version(thread, seen_version)

    async def appended(self, updated: Thread | None, org_id: str, thread_id: str) -> None:
        """After an append to the store: bump the version, then cache ``updated`` (the complete new
        thread, when the caller could build it) unless another append slipped in meanwhile."""
        from redis.exceptions import RedisError

        data_key, version_key = self._keys(org_id, thread_id)
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.incr(version_key).expire(version_key, self._ttl * 2)
                if updated is None:
                    pipe.delete(data_key)
                version, _, *_ = await pipe.execute()
        except RedisError as error:
            log.error("thread cache: could not record an append to %s (%s); dropping it", thread_id, error)
            await self.drop(org_id, [thread_id])
            return
        if updated is not None:
            await self._set_if_version(updated, str(version).encode())

    async def _set_if_version(self, thread: Thread, expected: bytes | None) -> None:
        from redis.exceptions import RedisError, WatchError

        data_key, version_key = self._keys(thread.org_id, thread.id)
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                await pipe.watch(version_key)
                if await pipe.get(version_key) != expected:
                    await pipe.delete(data_key)  # someone else appended: let the next read refill
                    return
                pipe.multi()
                pipe.set(data_key, _encoder.encode(thread), ex=self._ttl)
                await pipe.execute()
        except WatchError:
            await self.drop(thread.org_id, [thread.id])
        except RedisError as error:
            log.warning("thread cache write failed (%s); the store stays the source", error)

    async def drop(self, org_id: str, thread_ids: list[str]) -> None:
        from redis.exceptions import RedisError

        keys = [key for thread_id in thread_ids for key in self._keys(org_id, thread_id)]
        if not keys:
            return
        try:
            await self._redis.delete(*keys)
        except RedisError as error:
            log.error(
                "thread cache: could not drop %d thread(s) of org %s (%s)", len(thread_ids), org_id, error
            )

    async def drop_org(self, org_id: str) -> None:
        keys = []
        for prefix in (DATA_PREFIX, VERSION_PREFIX):
            keys += [key async for key in self._redis.scan_iter(match=f"{prefix}{org_id}:*", count=500)]
        if keys:
            await self._redis.delete(*keys)
