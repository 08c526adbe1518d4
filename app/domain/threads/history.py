"""Conversation threads of bridge calls: create, read, append.

With ``[stores] cache = "redis://..."`` threads are also kept in Redis (see
:mod:`junction.domain.threads.cache`), so the next turn of a conversation — on any worker or node —
reads its history without touching the document store. Appends go to the store first (the source
of truth). With the in-memory default, reads go to the store.
"""

from __future__ import annotations

from typing import Any

import msgspec

from junction.domain.threads.cache import RedisThreadCache
from junction.errors import NotFound
from junction.schemas.chat import Message
from junction.settings import ThreadSettings
from junction.stores.documents.protocol import Thread, ThreadRepository

#: ``provider_metadata`` key of the gateway's notes on a stored tool result (see junction.agents.loop).
JUNCTION_NOTES = "junction"


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

        Tool calls go with their results (the server-side tool rounds keep both): an assistant
        message keeps the tool calls the window answers, and a tool result is kept when the window
        holds its call — providers refuse a tool call no tool message answers, and a result
        without its call. The gateway's own notes on a result (latency, error) stay in the thread.
        """
        if self.history_messages == 0:
            return []
        window = thread.messages[-self.history_messages :]
        answered = {message.tool_call_id for message in window if message.role == "tool"}
        called: set[str | None] = set()
        kept: list[Message] = []
        for message in window:
            if message.tool_calls:
                calls = [call for call in message.tool_calls if call.id in answered]
                called.update(call.id for call in calls)
                if not calls and not message.text():
                    continue
                message = msgspec.structs.replace(message, tool_calls=calls or None)
            elif message.role == "tool":
                if message.tool_call_id not in called:
                    continue
                metadata = message.provider_metadata
                if metadata and JUNCTION_NOTES in metadata:
                    rest = {key: value for key, value in metadata.items() if key != JUNCTION_NOTES}
                    message = msgspec.structs.replace(message, provider_metadata=rest or None)
            kept.append(message)
        return kept

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
