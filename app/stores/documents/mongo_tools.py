"""HTTP tools on MongoDB (see :mod:`junction.stores.documents.tools`)."""

from __future__ import annotations

import msgspec
from pymongo.errors import DuplicateKeyError

from junction.security.crypto import Cipher
from junction.stores.documents.common import Notifier
from junction.stores.documents.mongo import MongoModels, MongoRepository, require_org
from junction.stores.documents.tools import HttpTool, NewTool, ToolPatch, tool_not_found
from junction.stores.documents.tools_common import new_tool, patched_tool, reveal_headers, tool_name_taken


class MongoTools(MongoRepository):
    def __init__(self, models: MongoModels, notify: Notifier, cipher: Cipher) -> None:
        super().__init__(models, notify)
        self._cipher = cipher

    async def create(self, org_id: str, spec: NewTool) -> HttpTool:
        tool = new_tool(org_id, spec, self._cipher)
        await require_org(self._m, org_id)
        try:
            await self._m.tools(**msgspec.structs.asdict(tool)).insert()
        except DuplicateKeyError:
            raise tool_name_taken(spec.name) from None
        await self._notify("tool", tool.id)
        return tool

    async def get(self, org_id: str, tool_id: str) -> HttpTool:
        return await self._one(self._m.tools, {"_id": tool_id, "org_id": org_id}, HttpTool, tool_not_found(tool_id))

    async def list(self, org_id: str) -> list[HttpTool]:
        return await self._all(self._m.tools, {"org_id": org_id}, [("created_at", 1), ("_id", 1)], HttpTool)

    async def many(self, org_id: str, tool_ids: list[str]) -> list[HttpTool]:
        return await self._all(self._m.tools, {"org_id": org_id, "_id": {"$in": tool_ids}}, [("_id", 1)], HttpTool)

    async def update(self, org_id: str, tool_id: str, patch: ToolPatch) -> HttpTool:
        updated = patched_tool(await self.get(org_id, tool_id), patch, self._cipher)
        values = msgspec.structs.asdict(updated)
        for fixed in ("id", "org_id", "created_at"):
            values.pop(fixed)
        try:
            await self._change_one(self._m.tools, {"_id": tool_id, "org_id": org_id}, {"$set": values},
                                   HttpTool, tool_not_found(tool_id))
        except DuplicateKeyError:
            raise tool_name_taken(updated.name) from None
        await self._notify("tool", tool_id)
        return updated

    async def delete(self, org_id: str, tool_id: str) -> None:
        await self._delete(self._m.tools, {"_id": tool_id, "org_id": org_id}, tool_not_found(tool_id))
        await self._notify("tool", tool_id)

    def reveal(self, tool: HttpTool) -> dict[str, str]:
        return reveal_headers(tool, self._cipher)
