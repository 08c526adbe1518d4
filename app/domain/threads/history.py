"""Conversation threads of bridge calls: create, read, append.

With ``[stores] cache = "redis://..."`` threads are also kept in Redis (see
:mod:`app.domain.threads.cache`), so the next turn of a conversation — on any worker or node —
reads its history without touching the document store. Appends go to the store first (the source
of truth). With the in-memory default, reads go to the store.
"""

from __future__ import annotations

from typing import Any

import msgspec

from app.domain.threads.cache import RedisThreadCache
from app.errors import NotFound
from app.schemas.chat import Message
from app.settings import ThreadSettings
from app.stores.documents.protocol import Thread, ThreadRepository


class ThreadHistory:
    def __init__(self, repository: ThreadRepository, redis: Any | None, settings: ThreadSettings) -> None:
        """``redis``: the process's shared client when ``[stores] cache`` is Redis, else ``None``."""
        self._repository = repository
        self._cache = RedisThreadCache(redis, settings.cache_seconds) if redis is not None else None
        self.history_messages = settings.history_messages

    async def create(self, org_id: str, bridge_id: str | None, owner: str | None = None) -> Thread:
        thread = await self._repository.create(org_id, bridge_id, owner)
        if self._cache is not None:
            await self._cache.fill(thread, None)
        return thread

    async def get(self, org_id: str, thread_id: str) -> Thread:
        """The whole thread (NotFound for another org's or a missing one)."""
        if self._cache is None:
            return await self._repository.get(org_id, thread_id)
        cached, version = await self._cache.read(org_id, thread_id)
        if cached is not None:
            return cached
        thread = await self._repository.get(org_id, thread_id)
        await self._cache.fill(thread, version)
        return thread

    async def for_bridge(self, org_id: str, thread_id: str, bridge_id: str) -> Thread:
        """The thread, which must belong to ``bridge_id`` (else 404: threads do not cross bridges)."""
        thread = await self.get(org_id, thread_id)
        if thread.bridge_id is not None and thread.bridge_id != bridge_id:
            raise NotFound(
                f"thread {thread_id!r} not found for this bridge", param="thread_id", code="thread_not_found"
            )
        return thread

    def recent(self, thread: Thread) -> list[Message]:
        """The last ``history_messages`` messages, sent with the next call.

        A reply that asked for tool calls is sent back as its text only: the thread holds no tool
        results, and providers refuse an assistant tool call that no tool message answers.
        """
        if self.history_messages == 0:
            return []
        window: list[Message] = []
        for message in thread.messages[-self.history_messages :]:
            if message.tool_calls:
                if not message.text():
                    continue
                message = msgspec.structs.replace(message, tool_calls=None)
            window.append(message)
        return window

    async def append(self, org_id: str, thread: Thread, messages: list[Message]) -> int:
        """Append to the store; the cached copy is updated when ``thread`` was complete and no
        other append came between (the store's new count proves it), else dropped."""
        count = await self._repository.append(org_id, thread.id, messages)
        if self._cache is not None:
            complete = len(thread.messages) == thread.message_count
            updated = None
            if complete and count == thread.message_count + len(messages):
                updated = msgspec.structs.replace(
                    thread, messages=[*thread.messages, *messages], message_count=count
                )
            await self._cache.appended(updated, org_id, thread.id)
        return count

    async def forget_org(self, org_id: str) -> None:
        """Drop every cached thread of an org (it was deleted)."""
        if self._cache is not None:
            await self._cache.drop_org(org_id)

    async def forget(self, org_id: str, thread_ids: list[str]) -> None:
        if self._cache is not None:
            await self._cache.drop(org_id, thread_ids)
