"""``/api/v1/admin/orgs``: the master key manages every org; an org's admin key sees and renames
its own org only (another org's id is a 404)."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, delete, get, patch, post
from litestar.handlers import HTTPRouteHandler

from junction.domain.access import is_unconfined, org_for
from junction.domain.fields import check_limits, check_name
from junction.domain.http import caller, decode_body
from junction.domain.limits import OrgView
from junction.domain.services import Domain
from junction.errors import PermissionDenied
from junction.pipeline import Gateway
from junction.stores.documents.protocol import BudgetPeriod, Org, OrgPatch


class NewOrgBody(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    name: str
    rpm: int | None = None
    tpm: int | None = None
    budget_usd: float | None = None
    budget_period: BudgetPeriod | None = None


def org_routes(gateway: Gateway, domain: Domain) -> list[HTTPRouteHandler]:
    orgs = domain.documents.orgs

    @post("/api/v1/admin/orgs", summary="Create an org (master key)", status_code=201)
    async def create_org(request: Request[Any, Any, Any]) -> Org:
        principal = await caller(gateway, request, "admin")
        if not is_unconfined(principal):
            raise PermissionDenied("only the master key creates orgs", code="master_key_required")
        body = decode_body(await request.body(), NewOrgBody)
        check_limits(body)
        org = await orgs.create(check_name(body.name))
        limits = {field: getattr(body, field) for field in ("rpm", "tpm", "budget_usd", "budget_period")}
        if any(value is not None for value in limits.values()):
            org = await orgs.update(org.id, OrgPatch(**limits))
        return org

    @get("/api/v1/admin/orgs", summary="Orgs in the caller's reach")
    async def list_orgs(request: Request[Any, Any, Any]) -> list[Org]:
        principal = await caller(gateway, request, "admin")
        own = org_for(principal, None, what="org")
        return await orgs.list() if own is None else [await orgs.get(own)]

    @get("/api/v1/admin/orgs/{org_id:str}", summary="One org, with its use of its limits and budget")
    async def get_org(request: Request[Any, Any, Any], org_id: str) -> OrgView:
        principal = await caller(gateway, request, "admin")
        return await OrgView.of(gateway, await orgs.get(org_for(principal, org_id, what="org") or org_id))

    @patch("/api/v1/admin/orgs/{org_id:str}", summary="Rename an org, or set its limits and budget")
    async def update_org(request: Request[Any, Any, Any], org_id: str) -> Org:
        principal = await caller(gateway, request, "admin")
        target = org_for(principal, org_id, what="org") or org_id
        change = decode_body(await request.body(), OrgPatch)
        check_limits(change)
        if isinstance(change.name, str):
            change.name = check_name(change.name)
        return await orgs.update(target, change)

    @delete("/api/v1/admin/orgs/{org_id:str}", summary="Delete an org and all it owns (master key)")
    async def delete_org(request: Request[Any, Any, Any], org_id: str) -> None:
        principal = await caller(gateway, request, "admin")
        target = org_for(principal, org_id, what="org") or org_id
        if not is_unconfined(principal):
            raise PermissionDenied("only the master key deletes orgs", code="master_key_required")
        await orgs.delete(target)
        await domain.threads.forget_org(target)

    return [create_org, list_orgs, get_org, update_org, delete_org]
