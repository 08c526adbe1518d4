"""Who may read which stored response, and the conversation a continuation starts from.

Stored responses are scoped like threads: a response is read, continued and deleted by who
created it, by its org's admins and by the master key; to anyone else it is missing (404), so ids
of others cannot be probed.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from junction.domain.access import could_be_id, is_unconfined, org_for, requested_org, thread_owner
from junction.errors import NotFound
from junction.plugins.protocols import Principal
from junction.schemas.chat import Message
from junction.stores.documents.responses import ResponseRepository, StoredResponse, response_not_found


class ResponseState:
    def __init__(self, repository: ResponseRepository) -> None:
        self._repository = repository

    @staticmethod
    def org_of(principal: Principal, query: Mapping[str, str], headers: Mapping[str, str]) -> str | None:
        """The org a response is stored in: the caller's own, or the one an unconfined caller names
        (``None`` when it names none)."""
        return org_for(principal, requested_org(query, headers), what="response")

    async def read(self, principal: Principal, org_id: str | None, response_id: str) -> StoredResponse:
        if is_unconfined(principal) and org_id is None:
            record = await self._repository.find(response_id)
        else:
            record = await self._repository.get(org_id, response_id)
        if not (is_unconfined(principal) or "admin" in principal.scopes) and record.owner != thread_owner(
            principal
        ):
            raise response_not_found(response_id)
        return record

    async def history(self, principal: Principal, org_id: str | None, previous_id: str) -> list[Message]:
        """The conversation ``previous_id`` ended; a missing one is a 404 naming the parameter."""
        try:
            if not could_be_id(previous_id):
                raise response_not_found(previous_id)
            return (await self.read(principal, org_id, previous_id)).context
        except NotFound:
            raise NotFound(
                f"previous_response_id: response {previous_id!r} not found",
                param="previous_response_id",
                code="previous_response_not_found",
            ) from None

    async def save(
        self,
        principal: Principal,
        org_id: str | None,
        response: dict[str, Any],
        input_items: list[dict[str, Any]],
        context: list[Message],
    ) -> None:
        await self._repository.put(
            StoredResponse(
                id=response["id"],
                org_id=org_id,
                owner=thread_owner(principal),
                created_at=datetime.now(UTC),
                response=response,
                input_items=input_items,
                context=context,
            )
        )

    async def delete(self, principal: Principal, org_id: str | None, response_id: str) -> None:
        record = await self.read(principal, org_id, response_id)
        await self._repository.delete(record.org_id, response_id)
