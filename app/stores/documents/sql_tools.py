"""HTTP tools on SQL (see :mod:`junction.stores.documents.tools`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from junction.stores.documents.common import Notifier
from junction.stores.documents.sql import tools
from junction.stores.documents.sql_repos import SqlRepository, require_org
from junction.stores.documents.tools import HttpTool, NewTool, ToolPatch, tool_not_found
from junction.stores.documents.tools_common import new_tool, patched_tool, reveal_headers, tool_name_taken

if TYPE_CHECKING:
    from junction.security.crypto import Cipher
    from junction.stores.documents.sql_store import SqlDatabase


def _in_org(org_id: str, tool_id: str) -> sa.ColumnElement[bool]:
    return sa.and_(tools.c.org_id == org_id, tools.c.id == tool_id)


class SqlTools(SqlRepository):
    def __init__(self, database: SqlDatabase, notify: Notifier, cipher: Cipher) -> None:
        super().__init__(database, notify)
        self._cipher = cipher

    async def create(self, org_id: str, spec: NewTool) -> HttpTool:
        tool = new_tool(org_id, spec, self._cipher)
        try:
            async with self._db.begin() as connection:
                await require_org(connection, org_id)
                await connection.execute(tools.insert().values(**msgspec.structs.asdict(tool)))
        except IntegrityError:
            raise tool_name_taken(spec.name) from None
        await self._notify("tool", tool.id)
        return tool

    async def get(self, org_id: str, tool_id: str) -> HttpTool:
        return await self._one(tools.select().where(_in_org(org_id, tool_id)), HttpTool, tool_not_found(tool_id))

    async def list(self, org_id: str) -> list[HttpTool]:
        query = tools.select().where(tools.c.org_id == org_id).order_by(tools.c.created_at, tools.c.id)
        return await self._all(query, HttpTool)

    async def many(self, org_id: str, tool_ids: list[str]) -> list[HttpTool]:
        query = tools.select().where(tools.c.org_id == org_id, tools.c.id.in_(tool_ids))
        return await self._all(query, HttpTool)

    async def update(self, org_id: str, tool_id: str, patch: ToolPatch) -> HttpTool:
        updated = patched_tool(await self.get(org_id, tool_id), patch, self._cipher)
        values = msgspec.structs.asdict(updated)
        for fixed in ("id", "org_id", "created_at"):
            values.pop(fixed)
        try:
            async with self._db.begin() as connection:
                result = await connection.execute(tools.update().where(_in_org(org_id, tool_id)).values(**values))
        except IntegrityError:
            raise tool_name_taken(updated.name) from None
        if result.rowcount == 0:
            raise tool_not_found(tool_id)
        await self._notify("tool", tool_id)
        return updated

    async def delete(self, org_id: str, tool_id: str) -> None:
        await self._delete(tools.delete().where(_in_org(org_id, tool_id)), tool_not_found(tool_id))
        await self._notify("tool", tool_id)

    def reveal(self, tool: HttpTool) -> dict[str, str]:
        return reveal_headers(tool, self._cipher)
