"""Checks ``Authorization: Bearer <key>`` or ``x-api-key: <key>`` against the master key."""

from __future__ import annotations

import hmac
from collections.abc import Mapping

from junction.auth import presented_key
from junction.plugins import MiddlewareConfig, PluginContext, Principal

MASTER_PRINCIPAL = Principal(id="master", kind="master", scopes=frozenset({"chat", "admin"}))


class MasterKeyAuthenticator:
    def __init__(self, config: MiddlewareConfig, context: PluginContext) -> None:
        key = context.settings.auth.master_key
        # Compared as bytes with hmac.compare_digest: constant time whatever the input.
        self._key = key.encode() if key else None

    async def authenticate(self, headers: Mapping[str, str]) -> Principal | None:
        if self._key is None:
            return None
        key = presented_key(headers)
        if key is not None and hmac.compare_digest(key.encode(), self._key):
            return MASTER_PRINCIPAL
        return None
