"""Finding a record by id for a caller: in the caller's org, or for the master key (which may not
say which org) in every org."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from junction.domain.access import org_for
from junction.errors import NotFound
from junction.plugins.protocols import Principal
from junction.stores.documents.protocol import OrgRepository

T = TypeVar("T")


async def orgs_in_reach(
    orgs: OrgRepository, principal: Principal, requested: str | None, *, what: str = "record"
) -> list[str]:
    """The org ids a call may act on: one for a confined caller or a named org, else all."""
    org = org_for(principal, requested, what=what)
    if org is not None:
        return [org]
    return [candidate.id for candidate in await orgs.list()]


async def first_found(org_ids: list[str], fetch: Callable[[str], Awaitable[T]], *, what: str) -> T:
    """``fetch(org_id)`` for the first org holding the record; NotFound when none does."""
    for org_id in org_ids:
        try:
            return await fetch(org_id)
        except NotFound:
            continue
    raise NotFound(f"{what} not found", code="not_found")
