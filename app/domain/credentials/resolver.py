"""Applies an org's own provider credential to the deployments a request is routed to.

A credential is decrypted once per worker and cached (an org without one for a provider is cached
as "none" too, so the common case costs a dict lookup); ``("credential", "<org>/<provider>")``
notifications drop it everywhere. Without a credential the deployment keeps the server-wide key.
"""

from __future__ import annotations

import dataclasses

import msgspec

from junction.domain.invalidation import OrgCache
from junction.plugins.protocols import Deployment
from junction.stores.documents.protocol import CredentialRepository, ProviderSecret
from junction.stores.notify import ChangeBus


class OrgCredentials:
    def __init__(self, repository: CredentialRepository, changes: ChangeBus | None, *, ttl: float) -> None:
        self._repository = repository
        self._cache: OrgCache[ProviderSecret | None] = OrgCache("credential", changes, ttl=ttl)

    def start(self) -> None:
        self._cache.start()

    def close(self) -> None:
        self._cache.close()

    async def secret(self, org_id: str, provider: str) -> ProviderSecret | None:
        return await self._cache.get(org_id, provider, lambda: self._repository.reveal(org_id, provider))

    async def apply(self, org_id: str, deployment: Deployment) -> Deployment:
        """``deployment`` with the org's key (and base URL, when it set one), if it stored one."""
        secret = await self.secret(org_id, deployment.provider_name)
        if secret is None:
            return deployment
        target = msgspec.structs.replace(
            deployment.target, api_key=secret.api_key, base_url=secret.base_url or deployment.target.base_url
        )
        return dataclasses.replace(deployment, target=target)
