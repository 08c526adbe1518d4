"""Console pages for orgs, their provider credentials, and API keys. Each handler does what the
matching admin API route does, with the same checks (imported from the API's modules) and the same
org scoping (:mod:`junction.domain.access`)."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get, post
from litestar.handlers import HTTPRouteHandler
from litestar.response import Redirect

from junction.domain.access import is_unconfined, org_for, org_required
from junction.domain.credentials.controllers import CredentialBody, checked_secret
from junction.domain.fields import check_limits, check_name
from junction.domain.keys.controllers import check_within_issuer, validated_key_spec
from junction.domain.keys.schemas import NewKeyBody
from junction.domain.limits import OrgView, usage
from junction.domain.lookup import first_found, orgs_in_reach
from junction.domain.orgs.controllers import NewOrgBody
from junction.errors import InvalidRequest, PermissionDenied
from junction.middleware.admin_ui.forms import decode_form, only
from junction.middleware.admin_ui.web import Ui, page_url, paged
from junction.stores.documents.protocol import OrgPatch

LIMIT_FIELDS = ("rpm", "tpm", "budget_usd", "budget_period")


def done(path: str, notice: str, **query: Any) -> Redirect:
    return Redirect(page_url(path, notice=notice, **query), status_code=303)


def tenancy_routes(ui: Ui) -> list[HTTPRouteHandler]:
    documents = ui.documents
    orgs, keys, credentials = documents.orgs, documents.keys, documents.credentials

    def master_only(principal: Any, what: str) -> None:
        if not is_unconfined(principal):
            raise PermissionDenied(f"only the master key {what}", code="master_key_required")

    # --- orgs ---------------------------------------------------------------------------------

    @get("/orgs", summary="Console: orgs", include_in_schema=False)
    async def org_list(request: Request[Any, Any, Any]) -> Response[str]:
        session = await ui.session(request)
        own = org_for(session.principal, None, what="org")
        found = await orgs.list() if own is None else [await orgs.get(own)]
        return ui.page("orgs.html", request, session, orgs=found)

    @post("/orgs", summary="Console: create an org", include_in_schema=False, status_code=303)
    async def org_create(request: Request[Any, Any, Any]) -> Redirect:
        session, fields = await ui.mutation(request)
        master_only(session.principal, "creates orgs")
        body = decode_form(only(fields, "name", *LIMIT_FIELDS), NewOrgBody)
        check_limits(body)
        org = await orgs.create(check_name(body.name))
        limits = {field: getattr(body, field) for field in LIMIT_FIELDS}
        if any(value is not None for value in limits.values()):
            await orgs.update(org.id, OrgPatch(**limits))
        return done(f"/orgs/{org.id}", "created")

    @get("/orgs/{org_id:str}", summary="Console: one org", include_in_schema=False)
    async def org_detail(request: Request[Any, Any, Any], org_id: str) -> Response[str]:
        session = await ui.session(request)
        target = org_for(session.principal, org_id, what="org") or org_id
        view = await OrgView.of(ui.gateway, await orgs.get(target))
        providers = sorted(info.name for info in ui.gateway.plugins.infos if info.kind == "provider")
        return ui.page("org.html", request, session, org=view, credentials=await credentials.list(target),
                       providers=providers)

    @post("/orgs/{org_id:str}", summary="Console: rename an org, set its limits", include_in_schema=False,
          status_code=303)
    async def org_update(request: Request[Any, Any, Any], org_id: str) -> Redirect:
        session, fields = await ui.mutation(request)
        target = org_for(session.principal, org_id, what="org") or org_id
        change = decode_form(only(fields, "name", *LIMIT_FIELDS), OrgPatch, clearable=LIMIT_FIELDS)
        check_limits(change)
        if isinstance(change.name, str):
            change.name = check_name(change.name)
        await orgs.update(target, change)
        return done(f"/orgs/{target}", "saved")

    @post("/orgs/{org_id:str}/delete", summary="Console: delete an org", include_in_schema=False,
          status_code=303)
    async def org_delete(request: Request[Any, Any, Any], org_id: str) -> Redirect:
        session, _ = await ui.mutation(request)
        target = org_for(session.principal, org_id, what="org") or org_id
        master_only(session.principal, "deletes orgs")
        await orgs.delete(target)
        await ui.runtime.domain.threads.forget_org(target)
        return done("/orgs", "deleted")

    # --- provider credentials -----------------------------------------------------------------

    @post("/orgs/{org_id:str}/credentials", summary="Console: set or rotate a provider credential",
          include_in_schema=False, status_code=303)
    async def credential_put(request: Request[Any, Any, Any], org_id: str) -> Redirect:
        session, fields = await ui.mutation(request)
        target = org_for(session.principal, org_id, what="org") or org_id
        await orgs.get(target)
        provider = fields.get("provider", "")
        installed = {info.name for info in ui.gateway.plugins.infos if info.kind == "provider"}
        if provider not in installed:
            raise InvalidRequest(f"provider: no provider named {provider!r}", param="provider",
                                 code="unknown_provider")
        body = decode_form(only(fields, "api_key", "base_url"), CredentialBody)
        secret = checked_secret(body, is_unconfined(session.principal),
                                ui.gateway.settings.limits.max_credential_chars)
        await credentials.put(target, provider, secret)
        return done(f"/orgs/{target}", "credential-set")

    @post("/orgs/{org_id:str}/credentials/{provider:str}/delete", summary="Console: delete a credential",
          include_in_schema=False, status_code=303)
    async def credential_delete(request: Request[Any, Any, Any], org_id: str, provider: str) -> Redirect:
        session, _ = await ui.mutation(request)
        target = org_for(session.principal, org_id, what="org") or org_id
        await credentials.delete(target, provider)
        return done(f"/orgs/{target}", "credential-deleted")

    # --- keys ---------------------------------------------------------------------------------

    @get("/keys", summary="Console: API keys", include_in_schema=False)
    async def key_list(request: Request[Any, Any, Any]) -> Response[str]:
        session = await ui.session(request)
        wanted = request.query_params.get("org_id") or None
        org_ids = await orgs_in_reach(orgs, session.principal, wanted, what="org")
        found = [record for org_id in org_ids for record in await keys.list(org_id)]
        found.sort(key=lambda record: record.created_at, reverse=True)
        reach = await orgs.list() if is_unconfined(session.principal) else [await orgs.get(org_ids[0])]
        shown, paging = paged(found, request)
        return ui.page("keys.html", request, session, keys=shown, paging=paging, orgs=reach, org_id=wanted)

    @post("/keys", summary="Console: issue an API key", include_in_schema=False)
    async def key_create(request: Request[Any, Any, Any]) -> Response[str]:
        session, fields = await ui.mutation(request)
        expires = fields.get("expires_at", "")
        if len(expires) == len("2026-01-31T12:00"):  # a datetime-local input: minutes, meant as UTC
            fields["expires_at"] = expires + ":00Z"
        body = decode_form(fields, NewKeyBody, lists=("scopes", "models"))
        org_id = org_required(session.principal, body.org_id, what="org")
        spec = validated_key_spec(body)
        check_within_issuer(session.principal, spec)
        issued = await keys.create(org_id, spec)
        # Rendered, not redirected: the secret exists in this one response (never stored, no-store).
        return ui.page("key_created.html", request, session, http_status=201, key=issued.record, secret=issued.key)

    @get("/keys/{key_id:str}", summary="Console: one API key and its use", include_in_schema=False)
    async def key_detail(request: Request[Any, Any, Any], key_id: str) -> Response[str]:
        session = await ui.session(request)
        org_ids = await orgs_in_reach(orgs, session.principal, None, what="key")
        record = await first_found(org_ids, lambda org_id: keys.get(org_id, key_id), what="key")
        used = await usage(ui.gateway, "key", f"key:{record.id}", record)
        return ui.page("key.html", request, session, key=record, usage=used)

    @post("/keys/{key_id:str}/revoke", summary="Console: revoke an API key", include_in_schema=False,
          status_code=303)
    async def key_revoke(request: Request[Any, Any, Any], key_id: str) -> Redirect:
        session, _ = await ui.mutation(request)
        org_ids = await orgs_in_reach(orgs, session.principal, None, what="key")
        await first_found(org_ids, lambda org_id: keys.revoke(org_id, key_id), what="key")
        return done(f"/keys/{key_id}", "revoked")

    return [org_list, org_create, org_detail, org_update, org_delete, credential_put, credential_delete,
            key_list, key_create, key_detail, key_revoke]
