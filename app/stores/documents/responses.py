"""Stored Responses (``POST /v1/responses`` with ``store``): the record and its repository Protocol.

A stored response keeps the whole conversation it ended (``context``, unified messages with
provider metadata such as thinking and thought signatures), so a ``previous_response_id``
continuation is one read, on any backend, for any provider, and keeps working when an earlier
response of the chain is deleted. ``org_id`` is ``None`` for the master key (or auth disabled)
calling without naming an org: such records are reachable only by unconfined callers.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol, runtime_checkable

import msgspec

from junction.errors import NotFound
from junction.schemas.chat import Message


class StoredResponse(msgspec.Struct, kw_only=True):
    id: str
    org_id: str | None = None
    #: Who created it (``key:<id>``, ``jwt:<subject>``, ``master``), as threads record it.
    owner: str | None = None
    created_at: datetime
    #: The response object as the client received it (JSON builtins).
    response: dict[str, Any]
    #: This request's input items, normalised (with ids), for ``GET …/input_items``.
    input_items: list[dict[str, Any]]
    #: The conversation up to and including this response's answer (instructions excluded: they
    #: are never carried over to a continuation).
    context: list[Message]


def response_not_found(response_id: str) -> NotFound:
    return NotFound(f"response {response_id!r} not found", param="response_id", code="response_not_found")


@runtime_checkable
class ResponseRepository(Protocol):
    async def put(self, record: StoredResponse) -> None:
        """Store a new response (NotFound when its org does not exist)."""
        ...

    async def get(self, org_id: str | None, response_id: str) -> StoredResponse:
        """The response of ``org_id`` (``None``: of no org); NotFound for another org's."""
        ...

    async def find(self, response_id: str) -> StoredResponse:
        """Unconfined lookup, for the master key calling without naming an org."""
        ...

    async def delete(self, org_id: str | None, response_id: str) -> None: ...
