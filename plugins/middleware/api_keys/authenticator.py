"""Authenticates ``sk-jn-...`` keys against the document store, with an in-process cache.

The hot path for a cached key is a regex match, one SHA-256 and a dict lookup: no I/O. The cache
is kept honest by the change bus: the store publishes ``("key", id)`` on every create, revoke and
delete, and ``("org", id)`` when an org goes; every worker drops the entry as soon as it hears it.
A lookup racing with a change is not cached (a generation counter detects the race), so a revoked
key can never be re-cached from a read that started before the revocation.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass

from junction.auth import presented_key
from junction.domain.invalidation import cache_ttl, current_ttl
from junction.errors import AuthenticationFailed
from junction.middleware.api_keys.config import ApiKeysConfig
from junction.plugins import PluginContext, Principal
from junction.security.api_keys import key_prefix, verify_api_key
from junction.stores.documents.protocol import ApiKey
from junction.stores.notify import Change

log = logging.getLogger("junction.api_keys")


@dataclass(frozen=True, slots=True)
class _CachedKey:
    record: ApiKey
    principal: Principal
    #: Epoch seconds after which the key is expired; ``None`` when it never expires.
    expires: float | None
    revoked: bool
    cached_at: float


def _cached(record: ApiKey) -> _CachedKey:
    principal = Principal(
        id=f"key:{record.id}",
        kind="key",
        org_id=record.org_id,
        scopes=frozenset(record.scopes),
        models=None if record.models is None else frozenset(record.models),
        expires_at=record.expires_at,
        rpm=record.rpm,
        tpm=record.tpm,
        budget_usd=record.budget_usd,
        budget_period=record.budget_period,
    )
    return _CachedKey(
        record=record,
        principal=principal,
        expires=record.expires_at.timestamp() if record.expires_at else None,
        revoked=record.revoked_at is not None,
        cached_at=time.monotonic(),
    )


class ApiKeyAuthenticator:
    def __init__(self, config: ApiKeysConfig, context: PluginContext) -> None:
        # Without a document store (plugins loaded outside an app, e.g. to be listed) there are no
        # keys to know: every credential is left to the other authenticators.
        self._keys = context.documents.keys if context.documents is not None else None
        self._changes = context.changes
        self._ttl = (
            config.cache_ttl_seconds
            if config.cache_ttl_seconds is not None
            else cache_ttl(context.settings.stores.cache)
        )
        self._limit = config.max_cached_keys
        self._by_prefix: dict[str, _CachedKey] = {}
        self._prefix_by_id: dict[str, str] = {}
        #: Prefixes the store does not know, so floods of made-up keys cost no database reads.
        self._unknown: set[str] = set()
        self._pending: dict[str, asyncio.Task[_CachedKey | None]] = {}
        self._generation = 0
        self._unsubscribe = None

    async def start(self) -> None:
        if self._changes is not None:
            self._unsubscribe = self._changes.subscribe(self._on_change)

    async def close(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    # --- the hot path -------------------------------------------------------------------------

    async def authenticate(self, headers: Mapping[str, str]) -> Principal | None:
        presented = presented_key(headers)
        if presented is None or self._keys is None:
            return None
        prefix = key_prefix(presented)
        if prefix is None:
            return None  # not shaped like one of our keys: another authenticator's turn
        entry = self._by_prefix.get(prefix)
        if entry is None or time.monotonic() - entry.cached_at > current_ttl(self._changes, self._ttl):
            entry = await self._load(prefix)
        if entry is None or not verify_api_key(presented, entry.record.secret_hash):
            raise AuthenticationFailed("invalid API key", code="invalid_api_key")
        if entry.revoked:
            raise AuthenticationFailed("this API key has been revoked", code="revoked_api_key")
        if entry.expires is not None and time.time() >= entry.expires:
            raise AuthenticationFailed("this API key has expired", code="expired_api_key")
        return entry.principal

    # --- cache fill ---------------------------------------------------------------------------

    async def _load(self, prefix: str) -> _CachedKey | None:
        if prefix in self._unknown:
            return None
        task = self._pending.get(prefix)
        if task is None:  # one store read per prefix, however many requests wait for it
            task = asyncio.ensure_future(self._fetch(prefix))
            self._pending[prefix] = task
            task.add_done_callback(lambda _: self._pending.pop(prefix, None))
        return await asyncio.shield(task)

    async def _fetch(self, prefix: str) -> _CachedKey | None:
        generation = self._generation
        assert self._keys is not None
        record = await self._keys.find_by_prefix(prefix)
        entry = _cached(record) if record is not None else None
        if generation != self._generation:
            return entry  # a change arrived meanwhile: use the answer once, cache nothing
        if len(self._by_prefix) >= self._limit:
            self._forget_all()
        if entry is None:
            if len(self._unknown) >= self._limit:
                self._unknown.clear()
            self._unknown.add(prefix)
        else:
            self._by_prefix[prefix] = entry
            self._prefix_by_id[entry.record.id] = prefix
        return entry

    # --- invalidation -------------------------------------------------------------------------

    def _on_change(self, change: Change) -> None:
        if change.kind == "key":
            self._generation += 1
            prefix = self._prefix_by_id.pop(change.id, None)
            if prefix is not None:
                self._by_prefix.pop(prefix, None)
            self._unknown.clear()  # a created key may have a prefix someone guessed before
        elif change.kind == "org":
            self._generation += 1
            for prefix, entry in list(self._by_prefix.items()):
                if entry.record.org_id == change.id:
                    self._by_prefix.pop(prefix, None)
                    self._prefix_by_id.pop(entry.record.id, None)
        elif change.kind == "*":
            self._generation += 1
            self._forget_all()

    def _forget_all(self) -> None:
        self._by_prefix.clear()
        self._prefix_by_id.clear()
        self._unknown.clear()
