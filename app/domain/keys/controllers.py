"""``/api/v1/admin/keys``: issue, list, revoke. The master key acts on any org (``org_id`` in the
body or query); a key with the ``admin`` scope only on its own org."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from litestar import Request, delete, get, post
from litestar.handlers import HTTPRouteHandler

from junction.domain.access import is_unconfined, org_required, requested_org
from junction.domain.fields import validated_key_spec
from junction.domain.http import caller, decode_body
from junction.domain.keys.schemas import IssuedKeyView, KeyView, NewKeyBody
from junction.domain.limits import usage
from junction.domain.lookup import first_found, orgs_in_reach
from junction.domain.services import Domain
from junction.errors import PermissionDenied
from junction.pipeline import Gateway
from junction.plugins.protocols import Principal
from junction.stores.documents.common import whole_milliseconds
from junction.stores.documents.protocol import NewApiKey


def check_within_issuer(principal: Principal, spec: NewApiKey) -> None:
    """A confined admin (an org's key or JWT) issues keys with at most its own scopes and models,
    expiring no later and limited (rpm, tpm, budget) at least as much, where it has those itself:
    no key can mint a more powerful or longer-lived one. The master key grants anything."""
    if is_unconfined(principal):
        return
    lacking = sorted(set(spec.scopes) - principal.scopes)
    if lacking:
        raise PermissionDenied(
            f"scopes: this credential cannot grant {', '.join(map(repr, lacking))}, which it lacks itself",
            param="scopes",
            code="insufficient_scope",
        )
    _check_models(principal.models, spec.models)
    _check_expiry(principal.expires_at, spec.expires_at)
    for field, unit in (("rpm", "requests a minute"), ("tpm", "tokens a minute")):
        _check_at_most(field, getattr(principal, field), getattr(spec, field), unit)
    if principal.budget_usd is not None:
        _check_at_most("budget_usd", principal.budget_usd, spec.budget_usd, "USD a budget period")
        _check_budget_period(principal.budget_period, spec.budget_period)


def _check_models(allowed: frozenset[str] | None, granted: list[str] | None) -> None:
    if allowed is None:
        return
    if granted is None:
        raise PermissionDenied(
            f"models: this credential may use only {', '.join(map(repr, sorted(allowed)))}; "
            "list the models the new key may use (some of those)",
            param="models",
            code="model_not_allowed",
        )
    beyond = sorted(set(granted) - allowed)
    if beyond:
        raise PermissionDenied(
            f"models: this credential cannot grant {', '.join(map(repr, beyond))}, which it may not use itself",
            param="models",
            code="model_not_allowed",
        )


def _check_expiry(own: datetime | None, granted: datetime | None) -> None:
    # Compared at the precision the stores keep (whole milliseconds, what MongoDB's dates hold):
    # a key stored as ...00.123 may issue one asking for its own original ...00.123456, which is
    # stored as ...00.123 too, so no child ever outlives its issuer.
    if own is None or (granted is not None and whole_milliseconds(granted) <= own):
        return
    raise PermissionDenied(
        f"expires_at: this credential expires at {own.isoformat()}; a key it issues must expire "
        "no later (set expires_at to that time or earlier)",
        param="expires_at",
        code="beyond_issuer",
    )


def _check_at_most(field: str, own: float | None, granted: float | None, unit: str) -> None:
    if own is None or (granted is not None and granted <= own):
        return
    raise PermissionDenied(
        f"{field}: this credential is limited to {own:g} {unit}; a key it issues must be limited "
        f"as much or more (set {field} to at most {own:g})",
        param=field,
        code="beyond_issuer",
    )


#: How long a budget lasts before it resets; a budget with no period never resets. A key spends at
#: most its issuer's amount within a window at least as long as the issuer's.
_BUDGET_WINDOW = {"day": 0, "month": 1, None: 2}


def _check_budget_period(own: str | None, granted: str | None) -> None:
    if _BUDGET_WINDOW[granted] >= _BUDGET_WINDOW[own]:
        return
    resets, needed = (
        ("never resets", "none either")
        if own is None
        else (f"resets every {own}", f"'{own}' or longer (or none)")
    )
    raise PermissionDenied(
        f"budget_period: this credential's budget {resets}; a key it issues needs a budget "
        f"period of {needed}",
        param="budget_period",
        code="beyond_issuer",
    )


def key_routes(gateway: Gateway, domain: Domain) -> list[HTTPRouteHandler]:
    keys = domain.documents.keys
    orgs = domain.documents.orgs

    @post("/api/v1/admin/keys", summary="Issue an API key (the key is shown once)", status_code=201)
    async def create_key(request: Request[Any, Any, Any]) -> IssuedKeyView:
        principal = await caller(gateway, request, "admin")
        body = decode_body(await request.body(), NewKeyBody)
        org_id = org_required(
            principal, requested_org(request.query_params, request.headers, body.org_id), what="org"
        )
        spec = validated_key_spec(body)
        check_within_issuer(principal, spec)
        return IssuedKeyView.issued(await keys.create(org_id, spec))

    @get("/api/v1/admin/keys", summary="API keys in the caller's reach (revoked ones included)")
    async def list_keys(request: Request[Any, Any, Any]) -> list[KeyView]:
        principal = await caller(gateway, request, "admin")
        org_ids = await orgs_in_reach(
            orgs, principal, requested_org(request.query_params, request.headers), what="org"
        )
        return [KeyView.of(record) for org_id in org_ids for record in await keys.list(org_id)]

    @get("/api/v1/admin/keys/{key_id:str}", summary="One API key")
    async def get_key(request: Request[Any, Any, Any], key_id: str) -> KeyView:
        principal = await caller(gateway, request, "admin")
        org_ids = await orgs_in_reach(
            orgs, principal, requested_org(request.query_params, request.headers), what="key"
        )
        record = await first_found(org_ids, lambda org_id: keys.get(org_id, key_id), what="key")
        view = KeyView.of(record)
        # The limit plugins count a key under its principal id (``key:<id>``).
        view.usage = await usage(gateway, "key", f"key:{record.id}", record)
        return view

    @delete(
        "/api/v1/admin/keys/{key_id:str}",
        summary="Revoke an API key (every worker, within a second)",
        status_code=200,
    )
    async def revoke_key(request: Request[Any, Any, Any], key_id: str) -> KeyView:
        principal = await caller(gateway, request, "admin")
        org_ids = await orgs_in_reach(
            orgs, principal, requested_org(request.query_params, request.headers), what="key"
        )
        return KeyView.of(await first_found(org_ids, lambda org_id: keys.revoke(org_id, key_id), what="key"))

    return [create_key, list_keys, get_key, revoke_key]
