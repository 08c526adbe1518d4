"""Conversation threads of bridge calls: create, read (Redis-cached when configured), append.

With ``[stores] cache = "redis://..."`` a thread is kept in Redis (msgpack, ``cache_seconds``
TTL) after every write, so the next call of the conversation — on any worker or node — reads its
history without touching the document store. Appends go to the store first (the source of truth);
the cached copy is replaced only when the store's new message count proves our copy was complete,
otherwise it is dropped and the next read refills it. With the in-memory default, reads go to the
store.
"""

from __future__ import annotations

import logging

import msgspec

from app.errors import NotFound
from app.schemas.chat import Message
from app.settings import ThreadSettings
from app.stores.documents.protocol import Thread, ThreadRepository

log = logging.getLogger("junction.threads")

KEY_PREFIX = "junction:thread:"
_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Thread)


class ThreadHistory:
    def __init__(self, repository: ThreadRepository, cache_url: str, settings: ThreadSettings) -> None:
        self._repository = repository
        scheme = cache_url.split(":", 1)[0].lower()
        self._url = cache_url if scheme in {"redis", "rediss", "unix"} else None
        self._ttl = settings.cache_seconds
        self.history_messages = settings.history_messages
        self._redis = None

    @property
    def cached(self) -> bool:
        return self._url is not None

    async def start(self) -> None:
        if self._url is not None:
            import redis.asyncio as redis

            self._redis = redis.Redis.from_url(self._url)

    async def close(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None

    @staticmethod
    def _key(org_id: str, thread_id: str) -> str:
        return f"{KEY_PREFIX}{org_id}:{thread_id}"

    async def create(self, org_id: str, bridge_id: str | None) -> Thread:
        thread = await self._repository.create(org_id, bridge_id)
        await self._remember(thread)
        return thread

    async def get(self, org_id: str, thread_id: str) -> Thread:
        """The whole thread (NotFound for another org's or a missing one)."""
        if self._redis is not None:
            from redis.exceptions import RedisError

            try:
                raw = await self._redis.get(self._key(org_id, thread_id))
            except RedisError as error:
                log.warning("thread cache read failed (%s); reading the store", error)
                raw = None
            if raw is not None:
                return _decoder.decode(raw)
        thread = await self._repository.get(org_id, thread_id)
        await self._remember(thread)
        return thread

    async def for_bridge(self, org_id: str, thread_id: str, bridge_id: str) -> Thread:
        """The thread, which must belong to ``bridge_id`` (else 404: threads do not cross bridges)."""
        thread = await self.get(org_id, thread_id)
        if thread.bridge_id is not None and thread.bridge_id != bridge_id:
            raise NotFound(f"thread {thread_id!r} not found for this bridge", param="thread_id",
                           code="thread_not_found")
        return thread

    def recent(self, thread: Thread) -> list[Message]:
        """The last ``history_messages`` messages, sent with the next call."""
        if self.history_messages == 0:
            return []
        return thread.messages[-self.history_messages:]

    async def append(self, org_id: str, thread: Thread, messages: list[Message]) -> int:
        count = await self._repository.append(org_id, thread.id, messages)
        if self._redis is None:
            return count
        complete = len(thread.messages) == thread.message_count
        if complete and count == thread.message_count + len(messages):
            await self._remember(msgspec.structs.replace(
                thread, messages=[*thread.messages, *messages], message_count=count))
        else:
            await self._drop(org_id, thread.id)
        return count

    async def forget_org(self, org_id: str) -> None:
        """Drop every cached thread of an org (it was deleted)."""
        if self._redis is None:
            return
        keys = [key async for key in self._redis.scan_iter(match=f"{KEY_PREFIX}{org_id}:*", count=500)]
        if keys:
            await self._redis.delete(*keys)

    async def forget(self, org_id: str, thread_ids: list[str]) -> None:
        if self._redis is not None and thread_ids:
            await self._redis.delete(*(self._key(org_id, thread_id) for thread_id in thread_ids))

    async def _remember(self, thread: Thread) -> None:
        if self._redis is None:
            return
        from redis.exceptions import RedisError

        try:
            await self._redis.set(self._key(thread.org_id, thread.id), _encoder.encode(thread), ex=self._ttl)
        except RedisError as error:
            log.warning("thread cache write failed (%s); dropping the cached copy", error)
            await self._drop(thread.org_id, thread.id)

    async def _drop(self, org_id: str, thread_id: str) -> None:
        assert self._redis is not None
        await self._redis.delete(self._key(org_id, thread_id))
