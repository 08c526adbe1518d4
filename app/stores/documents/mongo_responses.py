"""Stored Responses on MongoDB (see :mod:`junction.stores.documents.responses`)."""

from __future__ import annotations

from junction.stores.documents.common import stored_values
from junction.stores.documents.mongo import MongoRepository, require_org
from junction.stores.documents.responses import StoredResponse, response_not_found


class MongoResponses(MongoRepository):
    async def put(self, record: StoredResponse) -> None:
        if record.org_id is not None:
            await require_org(self._m, record.org_id)
        await self._m.responses(**stored_values(record)).insert()

    async def get(self, org_id: str | None, response_id: str) -> StoredResponse:
        query = {"_id": response_id, "org_id": org_id}
        return await self._one(self._m.responses, query, StoredResponse, response_not_found(response_id))

    async def find(self, response_id: str) -> StoredResponse:
        query = {"_id": response_id}
        return await self._one(self._m.responses, query, StoredResponse, response_not_found(response_id))

    async def delete(self, org_id: str | None, response_id: str) -> None:
        query = {"_id": response_id, "org_id": org_id}
        await self._delete(self._m.responses, query, response_not_found(response_id))
