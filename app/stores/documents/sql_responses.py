"""Stored Responses on SQL (see :mod:`junction.stores.documents.responses`)."""

from __future__ import annotations

import sqlalchemy as sa

from junction.stores.documents.common import stored_values
from junction.stores.documents.responses import StoredResponse, response_not_found
from junction.stores.documents.sql import responses
from junction.stores.documents.sql_repos import SqlRepository, require_org


def _in_org(org_id: str | None, response_id: str) -> sa.ColumnElement[bool]:
    org = responses.c.org_id.is_(None) if org_id is None else responses.c.org_id == org_id
    return sa.and_(responses.c.id == response_id, org)


class SqlResponses(SqlRepository):
    async def put(self, record: StoredResponse) -> None:
        async with self._db.begin() as connection:
            if record.org_id is not None:
                await require_org(connection, record.org_id)
            await connection.execute(responses.insert().values(**stored_values(record)))

    async def get(self, org_id: str | None, response_id: str) -> StoredResponse:
        query = responses.select().where(_in_org(org_id, response_id))
        return await self._one(query, StoredResponse, response_not_found(response_id))

    async def find(self, response_id: str) -> StoredResponse:
        query = responses.select().where(responses.c.id == response_id)
        return await self._one(query, StoredResponse, response_not_found(response_id))

    async def delete(self, org_id: str | None, response_id: str) -> None:
        await self._delete(
            responses.delete().where(_in_org(org_id, response_id)), response_not_found(response_id)
        )
