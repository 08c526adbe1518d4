"""MongoDB repositories for bridges (with versions) and conversation threads."""

from __future__ import annotations

from typing import Any

import msgspec
from pymongo.errors import DuplicateKeyError

from junction.schemas.chat import Message
from junction.stores.documents.bridges import Bridge, BridgePatch, BridgeVersion, NewBridge, ResolvedBridge
from junction.stores.documents.common import (
    Notifier,
    bridge_not_found,
    check_last,
    check_limit,
    first_wanted_seq,
    is_bridge_id,
    new_bridge_fields,
    new_thread,
    numbered_messages,
    patched_fields,
    resolution,
    slug_taken,
    snapshot,
    stored_thread,
    thread_not_found,
    utc_now,
    version_fields,
    version_not_found,
)
from junction.stores.documents.mongo import MongoModels, MongoRepository, require_org, to_record
from junction.stores.documents.protocol import Thread


def bridge_filter(org_id: str, id_or_slug: str) -> dict[str, Any]:
    return {"org_id": org_id, "_id" if is_bridge_id(id_or_slug) else "slug": id_or_slug}


class MongoBridges(MongoRepository):
    async def create(self, org_id: str, spec: NewBridge) -> Bridge:
        await require_org(self._m, org_id)
        document = self._m.bridges(**new_bridge_fields(org_id, spec))
        try:
            await document.insert()
        except DuplicateKeyError:
            raise slug_taken(spec.slug) from None
        await self._notify("bridge", document.id)
        return to_record(document, Bridge)

    async def get(self, org_id: str, id_or_slug: str) -> Bridge:
        return await self._one(
            self._m.bridges, bridge_filter(org_id, id_or_slug), Bridge, bridge_not_found(id_or_slug)
        )

    async def list(self, org_id: str) -> list[Bridge]:
        return await self._all(self._m.bridges, {"org_id": org_id}, [("created_at", 1), ("_id", 1)], Bridge)

    async def update(self, org_id: str, bridge_id: str, patch: BridgePatch) -> Bridge:
        changes = patched_fields(patch)
        try:
            bridge = await self._change_one(
                self._m.bridges,
                bridge_filter(org_id, bridge_id),
                {"$set": changes},
                Bridge,
                bridge_not_found(bridge_id),
            )
        except DuplicateKeyError:
            raise slug_taken(str(changes.get("slug"))) from None
        await self._notify("bridge", bridge.id)
        return bridge

    async def delete(self, org_id: str, bridge_id: str) -> None:
        bridge = await self.get(org_id, bridge_id)
        owned = {"bridge_id": bridge.id, "org_id": org_id}
        await self._m.bridges.find({"_id": bridge.id, "org_id": org_id}).delete()
        thread_ids = [thread.id for thread in await self._m.threads.find(owned).to_list()]
        await self._m.versions.find(owned).delete()
        await self._m.threads.find(owned).delete()
        if thread_ids:
            await self._m.messages.find({"thread_id": {"$in": thread_ids}, "org_id": org_id}).delete()
        await self._notify("bridge", bridge.id)

    async def create_version(self, org_id: str, bridge_id: str) -> BridgeVersion:
        # One atomic $inc hands out the number and returns the draft it belongs to.
        bridge = await self._change_one(
            self._m.bridges,
            bridge_filter(org_id, bridge_id),
            {"$inc": {"latest_version": 1}, "$set": {"updated_at": utc_now()}},
            Bridge,
            bridge_not_found(bridge_id),
        )
        version = snapshot(bridge)
        await self._m.versions(id=f"{bridge.id}/{version.version}", **version_fields(version)).insert()
        await self._notify("bridge", bridge.id)
        return version

    async def _version(self, bridge: Bridge, version: int) -> BridgeVersion:
        query = {"bridge_id": bridge.id, "org_id": bridge.org_id, "version": version}
        return await self._one(self._m.versions, query, BridgeVersion, version_not_found(bridge, version))

    async def get_version(self, org_id: str, bridge_id: str, version: int) -> BridgeVersion:
        return await self._version(await self.get(org_id, bridge_id), version)

    async def list_versions(self, org_id: str, bridge_id: str) -> list[BridgeVersion]:
        bridge = await self.get(org_id, bridge_id)
        owned = {"bridge_id": bridge.id, "org_id": org_id}
        return await self._all(self._m.versions, owned, [("version", 1)], BridgeVersion)

    async def publish(self, org_id: str, bridge_id: str, version: int) -> Bridge:
        bridge = await self.get(org_id, bridge_id)
        await self._version(bridge, version)
        published = await self._change_one(
            self._m.bridges,
            {"_id": bridge.id, "org_id": org_id},
            {"$set": {"published_version": version, "updated_at": utc_now()}},
            Bridge,
            bridge_not_found(bridge_id),
        )
        await self._notify("bridge", bridge.id)
        return published

    async def resolve(self, org_id: str, id_or_slug: str) -> ResolvedBridge:
        bridge = await self.get(org_id, id_or_slug)
        if bridge.published_version is None:
            return resolution(bridge, None)
        return resolution(bridge, await self._version(bridge, bridge.published_version))


class MongoThreads(MongoRepository):
    def __init__(self, models: MongoModels, notify: Notifier, bridges: MongoBridges) -> None:
        super().__init__(models, notify)
        self._bridges = bridges

    async def create(self, org_id: str, bridge_id: str | None = None, owner: str | None = None) -> Thread:
        await require_org(self._m, org_id)
        if bridge_id is not None:
            bridge_id = (await self._bridges.get(org_id, bridge_id)).id
        thread = new_thread(org_id, bridge_id, owner)
        await self._m.threads(**stored_thread(thread)).insert()
        return thread

    async def get(self, org_id: str, thread_id: str, last: int | None = None) -> Thread:
        check_last(last)
        document = await self._m.threads.find_one({"_id": thread_id, "org_id": org_id})
        if document is None:
            raise thread_not_found(thread_id)
        wanted = {
            "thread_id": thread_id,
            "org_id": org_id,
            "seq": {"$gte": first_wanted_seq(document.message_count, last)},
        }
        rows = await self._m.messages.find(wanted).sort([("seq", 1)]).to_list()
        thread = to_record(document, Thread)
        thread.messages = msgspec.convert([row.message for row in rows], list[Message])
        return thread

    async def append(self, org_id: str, thread_id: str, messages: list[Message]) -> int:
        # The $inc reserves the positions atomically, so concurrent appends never share a number.
        thread = await self._change_one(
            self._m.threads,
            {"_id": thread_id, "org_id": org_id},
            {"$inc": {"message_count": len(messages)}, "$set": {"updated_at": utc_now()}},
            Thread,
            thread_not_found(thread_id),
        )
        if messages:
            await self._m.messages.insert_many(
                [
                    self._m.messages(
                        id=f"{thread_id}/{seq}", thread_id=thread_id, org_id=org_id, seq=seq, message=message
                    )
                    for seq, message in numbered_messages(messages, thread.message_count)
                ]
            )
        return thread.message_count

    async def list(self, org_id: str, bridge_id: str | None = None, limit: int = 100) -> list[Thread]:
        query: dict[str, Any] = {"org_id": org_id}
        check_limit(limit)
        if bridge_id is not None:
            query["bridge_id"] = (await self._bridges.get(org_id, bridge_id)).id
        return await self._all(self._m.threads, query, [("updated_at", -1), ("_id", -1)], Thread, limit=limit)

    async def latest_owned(self, org_id: str, bridge_id: str, owner: str) -> Thread | None:
        query = {"org_id": org_id, "bridge_id": bridge_id, "owner": owner}
        found = await self._all(self._m.threads, query, [("created_at", -1), ("_id", -1)], Thread, limit=1)
        return found[0] if found else None

    async def org_of(self, thread_id: str) -> str | None:
        document = await self._m.threads.find_one({"_id": thread_id})
        return None if document is None else document.org_id

    async def delete(self, org_id: str, thread_id: str) -> None:
        await self._delete(self._m.threads, {"_id": thread_id, "org_id": org_id}, thread_not_found(thread_id))
        await self._m.messages.find({"thread_id": thread_id, "org_id": org_id}).delete()
        await self._notify("thread", thread_id)
