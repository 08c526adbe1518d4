"""MongoDB repositories for bridges (with versions) and conversation threads."""

from __future__ import annotations

from typing import Any

import msgspec
from beanie import UpdateResponse
from pymongo.errors import DuplicateKeyError

from app.errors import Conflict, InvalidRequest, NotFound
from app.schemas.chat import Message
from app.stores.documents.common import (
    Notifier,
    bridge_config_builtins,
    bridge_fields,
    is_bridge_id,
    new_id,
    patched_fields,
    utc_now,
)
from app.stores.documents.mongo import MongoModels, require_org, to_record
from app.stores.documents.protocol import (
    Bridge,
    BridgePatch,
    BridgeVersion,
    NewBridge,
    ResolvedBridge,
    Thread,
)


def _slug_taken(slug: str) -> Conflict:
    return Conflict(
        f"a bridge with slug {slug!r} already exists in this org", param="slug", code="slug_taken"
    )


def bridge_filter(org_id: str, id_or_slug: str) -> dict[str, Any]:
    return {"org_id": org_id, "_id" if is_bridge_id(id_or_slug) else "slug": id_or_slug}


class MongoBridges:
    def __init__(self, models: MongoModels, notify: Notifier) -> None:
        self._m = models
        self._notify = notify

    async def create(self, org_id: str, spec: NewBridge) -> Bridge:
        await require_org(self._m, org_id)
        now = utc_now()
        fields = {
            **bridge_fields(spec),
            "id": new_id("br"),
            "org_id": org_id,
            "published_version": None,
            "latest_version": 0,
            "created_at": now,
            "updated_at": now,
        }
        document = self._m.bridges(**fields)
        try:
            await document.insert()
        except DuplicateKeyError:
            raise _slug_taken(spec.slug) from None
        await self._notify("bridge", document.id)
        return to_record(document, Bridge)

    async def get(self, org_id: str, id_or_slug: str) -> Bridge:
        document = await self._m.bridges.find_one(bridge_filter(org_id, id_or_slug))
        if document is None:
            raise NotFound(f"bridge {id_or_slug!r} not found")
        return to_record(document, Bridge)

    async def list(self, org_id: str) -> list[Bridge]:
        documents = (
            await self._m.bridges.find({"org_id": org_id}).sort([("created_at", 1), ("_id", 1)]).to_list()
        )
        return [to_record(document, Bridge) for document in documents]

    async def update(self, org_id: str, bridge_id: str, patch: BridgePatch) -> Bridge:
        changes = {**patched_fields(patch), "updated_at": utc_now()}
        try:
            document = await self._m.bridges.find_one(bridge_filter(org_id, bridge_id)).update(
                {"$set": changes}, response_type=UpdateResponse.NEW_DOCUMENT
            )
        except DuplicateKeyError:
            raise _slug_taken(str(changes.get("slug"))) from None
        if document is None:
            raise NotFound(f"bridge {bridge_id!r} not found")
        await self._notify("bridge", document.id)
        return to_record(document, Bridge)

    async def delete(self, org_id: str, bridge_id: str) -> None:
        bridge = await self.get(org_id, bridge_id)
        await self._m.bridges.find({"_id": bridge.id, "org_id": org_id}).delete()
        thread_ids = [
            thread.id
            for thread in await self._m.threads.find({"bridge_id": bridge.id, "org_id": org_id}).to_list()
        ]
        await self._m.versions.find({"bridge_id": bridge.id, "org_id": org_id}).delete()
        await self._m.threads.find({"bridge_id": bridge.id, "org_id": org_id}).delete()
        if thread_ids:
            await self._m.messages.find({"thread_id": {"$in": thread_ids}, "org_id": org_id}).delete()
        await self._notify("bridge", bridge.id)

    async def create_version(self, org_id: str, bridge_id: str) -> BridgeVersion:
        # One atomic $inc hands out the number and returns the draft it belongs to.
        now = utc_now()
        document = await self._m.bridges.find_one(bridge_filter(org_id, bridge_id)).update(
            {"$inc": {"latest_version": 1}, "$set": {"updated_at": now}},
            response_type=UpdateResponse.NEW_DOCUMENT,
        )
        if document is None:
            raise NotFound(f"bridge {bridge_id!r} not found")
        bridge = to_record(document, Bridge)
        version = BridgeVersion(
            bridge_id=bridge.id,
            org_id=org_id,
            version=bridge.latest_version,
            config=bridge.draft(),
            created_at=now,
        )
        await self._m.versions(
            id=f"{bridge.id}/{version.version}",
            bridge_id=bridge.id,
            org_id=org_id,
            version=version.version,
            config=bridge_config_builtins(bridge),
            created_at=now,
        ).insert()
        await self._notify("bridge", bridge.id)
        return version

    async def _version(self, bridge: Bridge, version: int) -> BridgeVersion:
        document = await self._m.versions.find_one(
            {"bridge_id": bridge.id, "org_id": bridge.org_id, "version": version}
        )
        if document is None:
            raise NotFound(f"bridge {bridge.slug!r} has no version {version}", param="version")
        return to_record(document, BridgeVersion)

    async def get_version(self, org_id: str, bridge_id: str, version: int) -> BridgeVersion:
        return await self._version(await self.get(org_id, bridge_id), version)

    async def list_versions(self, org_id: str, bridge_id: str) -> list[BridgeVersion]:
        bridge = await self.get(org_id, bridge_id)
        documents = (
            await self._m.versions.find({"bridge_id": bridge.id, "org_id": org_id})
            .sort([("version", 1)])
            .to_list()
        )
        return [to_record(document, BridgeVersion) for document in documents]

    async def publish(self, org_id: str, bridge_id: str, version: int) -> Bridge:
        bridge = await self.get(org_id, bridge_id)
        await self._version(bridge, version)
        document = await self._m.bridges.find_one({"_id": bridge.id, "org_id": org_id}).update(
            {"$set": {"published_version": version, "updated_at": utc_now()}},
            response_type=UpdateResponse.NEW_DOCUMENT,
        )
        if document is None:
            raise NotFound(f"bridge {bridge_id!r} not found")
        await self._notify("bridge", bridge.id)
        return to_record(document, Bridge)

    async def resolve(self, org_id: str, id_or_slug: str) -> ResolvedBridge:
        bridge = await self.get(org_id, id_or_slug)
        if bridge.published_version is None:
            return ResolvedBridge(bridge=bridge, version=None, config=bridge.draft())
        published = await self._version(bridge, bridge.published_version)
        return ResolvedBridge(bridge=bridge, version=published.version, config=published.config)


class MongoThreads:
    def __init__(self, models: MongoModels, notify: Notifier, bridges: MongoBridges) -> None:
        self._m = models
        self._notify = notify
        self._bridges = bridges

    async def create(self, org_id: str, bridge_id: str | None = None) -> Thread:
        await require_org(self._m, org_id)
        if bridge_id is not None:
            bridge_id = (await self._bridges.get(org_id, bridge_id)).id
        now = utc_now()
        thread = Thread(id=new_id("th"), org_id=org_id, bridge_id=bridge_id, created_at=now, updated_at=now)
        await self._m.threads(
            id=thread.id, org_id=org_id, bridge_id=bridge_id, message_count=0, created_at=now, updated_at=now
        ).insert()
        return thread

    async def get(self, org_id: str, thread_id: str, last: int | None = None) -> Thread:
        if last is not None and last < 0:
            raise InvalidRequest("last must be >= 0", param="last")
        document = await self._m.threads.find_one({"_id": thread_id, "org_id": org_id})
        if document is None:
            raise NotFound(f"thread {thread_id!r} not found")
        first_seq = 1 if last is None else document.message_count - last + 1
        rows = (
            await self._m.messages.find(
                {"thread_id": thread_id, "org_id": org_id, "seq": {"$gte": first_seq}}
            )
            .sort([("seq", 1)])
            .to_list()
        )
        thread = to_record(document, Thread)
        thread.messages = msgspec.convert([row.message for row in rows], list[Message])
        return thread

    async def append(self, org_id: str, thread_id: str, messages: list[Message]) -> int:
        # The $inc reserves the positions atomically, so concurrent appends never share a number.
        document = await self._m.threads.find_one({"_id": thread_id, "org_id": org_id}).update(
            {"$inc": {"message_count": len(messages)}, "$set": {"updated_at": utc_now()}},
            response_type=UpdateResponse.NEW_DOCUMENT,
        )
        if document is None:
            raise NotFound(f"thread {thread_id!r} not found")
        total: int = document.message_count
        start = total - len(messages) + 1
        if messages:
            await self._m.messages.insert_many(
                [
                    self._m.messages(
                        id=f"{thread_id}/{start + offset}",
                        thread_id=thread_id,
                        org_id=org_id,
                        seq=start + offset,
                        message=msgspec.to_builtins(message),
                    )
                    for offset, message in enumerate(messages)
                ]
            )
        return total

    async def list(self, org_id: str, bridge_id: str | None = None, limit: int = 100) -> list[Thread]:
        query: dict[str, Any] = {"org_id": org_id}
        if bridge_id is not None:
            query["bridge_id"] = (await self._bridges.get(org_id, bridge_id)).id
        documents = (
            await self._m.threads.find(query).sort([("updated_at", -1), ("_id", -1)]).limit(limit).to_list()
        )
        return [to_record(document, Thread) for document in documents]

    async def delete(self, org_id: str, thread_id: str) -> None:
        result = await self._m.threads.find({"_id": thread_id, "org_id": org_id}).delete()
        if result is None or result.deleted_count == 0:
            raise NotFound(f"thread {thread_id!r} not found")
        await self._m.messages.find({"thread_id": thread_id, "org_id": org_id}).delete()
        await self._notify("thread", thread_id)
