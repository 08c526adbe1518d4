"""``/api/v1/admin/orgs/{id}/credentials/{provider}``: an org's own provider key, stored sealed
(AES-GCM) and never returned or logged. Listing shows which providers have one, not the secret.

Only the master key may set a ``base_url``: it makes the gateway send requests (carrying the key)
to a URL of the caller's choosing, which an org admin must not be able to point at the operator's
internal network.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import msgspec
from litestar import Request, delete, get, put
from litestar.handlers import HTTPRouteHandler

from junction.domain.access import is_unconfined, org_for
from junction.domain.http import caller, decode_body
from junction.domain.services import Domain
from junction.errors import InvalidRequest, PermissionDenied
from junction.pipeline import Gateway
from junction.plugins.protocols import Principal
from junction.stores.documents.protocol import ProviderCredential, ProviderSecret


class CredentialBody(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    api_key: str
    base_url: str | None = None

    def __repr__(self) -> str:
        return f"CredentialBody(api_key=<redacted>, base_url={self.base_url!r})"


class CredentialView(msgspec.Struct, kw_only=True):
    """What the API says about a stored credential: that it exists, never what it is."""

    org_id: str
    provider: str
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, record: ProviderCredential) -> CredentialView:
        return cls(
            org_id=record.org_id,
            provider=record.provider,
            created_at=record.created_at,
            updated_at=record.updated_at,
        )


def checked_secret(body: CredentialBody, unconfined: bool, max_chars: int) -> ProviderSecret:
    api_key = body.api_key.strip()
    if not api_key:
        raise InvalidRequest("api_key: must not be empty", param="api_key", code="invalid_value")
    if len(api_key) > max_chars:
        raise InvalidRequest(f"api_key: longer than limits.max_credential_chars ({max_chars} characters)",
                             param="api_key", code="credential_too_large")
    if any(char.isspace() or not char.isprintable() for char in api_key):
        # It travels in an HTTP header: a line break or control character could never work.
        raise InvalidRequest(
            "api_key: must not contain spaces or control characters", param="api_key", code="invalid_value"
        )
    base_url = body.base_url
    if base_url is not None:
        if not unconfined:
            raise PermissionDenied(
                "base_url: only the master key may set a credential's base URL",
                param="base_url",
                code="master_key_required",
            )
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InvalidRequest("base_url: must be an http(s) URL", param="base_url", code="invalid_value")
        base_url = base_url.rstrip("/")
    return ProviderSecret(api_key=api_key, base_url=base_url)


def credential_routes(gateway: Gateway, domain: Domain) -> list[HTTPRouteHandler]:
    credentials = domain.documents.credentials
    orgs = domain.documents.orgs
    installed = {info.name for info in gateway.plugins.infos if info.kind == "provider"}

    def provider_name(provider: str) -> str:
        if provider not in installed:
            raise InvalidRequest(
                f"provider: no provider named {provider!r} (installed: "
                f"{', '.join(sorted(installed)) or 'none'})",
                param="provider",
                code="unknown_provider",
            )
        return provider

    async def org_in_reach(request: Request[Any, Any, Any], org_id: str) -> tuple[Principal, str]:
        """The admin caller and the org of the path, which a confined admin must own (else 404)."""
        principal = await caller(gateway, request, "admin")
        return principal, org_for(principal, org_id, what="org") or org_id

    @put(
        "/api/v1/admin/orgs/{org_id:str}/credentials/{provider:str}",
        summary="Store an org's key for a provider (encrypted; never returned)",
    )
    async def put_credential(request: Request[Any, Any, Any], org_id: str, provider: str) -> CredentialView:
        principal, target = await org_in_reach(request, org_id)
        await orgs.get(target)
        secret = checked_secret(decode_body(await request.body(), CredentialBody), is_unconfined(principal),
                                 gateway.settings.limits.max_credential_chars)
        return CredentialView.of(await credentials.put(target, provider_name(provider), secret))

    @get("/api/v1/admin/orgs/{org_id:str}/credentials", summary="Providers this org has its own key for")
    async def list_credentials(request: Request[Any, Any, Any], org_id: str) -> list[CredentialView]:
        _, target = await org_in_reach(request, org_id)
        await orgs.get(target)
        return [CredentialView.of(record) for record in await credentials.list(target)]

    @delete(
        "/api/v1/admin/orgs/{org_id:str}/credentials/{provider:str}",
        summary="Remove an org's key (calls fall back to the server-wide key)",
    )
    async def delete_credential(request: Request[Any, Any, Any], org_id: str, provider: str) -> None:
        _, target = await org_in_reach(request, org_id)
        await credentials.delete(target, provider)

    return [put_credential, list_credentials, delete_credential]
