"""Per-worker caches emptied by change notifications: records keyed by ``(org_id, name)``, and the
list of org ids.

Used for data read on the hot path (provider credentials, bridges): the first request reads the
store, later ones read memory, and a ``(kind, id)`` change on the bus drops the affected entries in
every worker. A read racing with a change is not cached (generation check), so a stale value cannot
be re-inserted after the change that invalidated it.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from junction.stores.documents.protocol import OrgRepository
from junction.stores.notify import Change, ChangeBus

V = TypeVar("V")

#: With a shared (Redis) bus every change reaches every worker; entries are re-read after this
#: long anyway, as a safety net.
SHARED_BUS_TTL_SECONDS = 300.0
#: With the in-process bus (``memory://``) a change made by another process — a second Granian
#: worker, or the ``junction keys revoke`` command — is not heard, so entries live one second.
LOCAL_BUS_TTL_SECONDS = 1.0


def cache_ttl(cache_url: str) -> float:
    """How long a cached record may be served without a re-read, for this ``[stores] cache``."""
    return LOCAL_BUS_TTL_SECONDS if cache_url.split(":", 1)[0].lower() == "memory" else SHARED_BUS_TTL_SECONDS


def current_ttl(changes: ChangeBus | None, ttl: float) -> float:
    """``ttl`` while the change bus is trusted; at most the in-process bus's 1 s while it is not
    (Redis down or silent): a change made elsewhere during an outage — a revocation — is then
    seen within the same ~1 s it takes when the bus is up, read from the store."""
    if changes is None or changes.trusted():
        return ttl
    return min(ttl, LOCAL_BUS_TTL_SECONDS)


class _Subscriber:
    """Listens to the change bus between ``start`` and ``close``; subclasses say what a change
    drops in ``_on_change``."""

    _changes: ChangeBus | None
    _unsubscribe: Callable[[], None] | None = None

    def start(self) -> None:
        if self._changes is not None and self._unsubscribe is None:
            self._unsubscribe = self._changes.subscribe(self._on_change)

    def close(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    def _on_change(self, change: Change) -> None:
        raise NotImplementedError


class OrgCache(_Subscriber, Generic[V]):
    def __init__(
        self,
        kind: str,
        changes: ChangeBus | None,
        *,
        ttl: float,
        limit: int = 100_000,
        max_chars: int = 8 << 20,
        record_id: Callable[[V], str | None] | None = None,
    ) -> None:
        self._kind = kind
        self._changes = changes
        self._ttl = ttl
        self._limit = limit
        #: Names come from callers (``bridge/<anything>`` is cached as a miss): the cache is bounded
        #: by the characters of its keys too, not only by how many there are.
        self._max_chars = max_chars
        self._chars = 0
        self._record_id = record_id
        self._entries: dict[tuple[str, str], tuple[float, V]] = {}
        self._generation = 0

    async def get(self, org_id: str, name: str, load: Callable[[], Awaitable[V]]) -> V:
        key = (org_id, name)
        entry = self._entries.get(key)
        if entry is not None and time.monotonic() - entry[0] < current_ttl(self._changes, self._ttl):
            return entry[1]
        generation = self._generation
        value = await load()
        if generation == self._generation:
            if len(self._entries) >= self._limit or self._chars > self._max_chars:
                self._entries.clear()
                self._chars = 0
            self._entries[key] = (time.monotonic(), value)
            self._chars += len(org_id) + len(name)
        return value

    def forget(self, predicate: Callable[[tuple[str, str], V], bool] | None = None) -> None:
        self._generation += 1
        if predicate is None:
            self._entries.clear()
            self._chars = 0
            return
        for key in [k for k, (_, v) in self._entries.items() if predicate(k, v)]:
            del self._entries[key]

    def _on_change(self, change: Change) -> None:
        if change.kind == "*":
            self.forget()
        elif change.kind == "org":
            self.forget(lambda key, _: key[0] == change.id)
        elif change.kind == self._kind:
            self.forget(self._matcher(change.id))

    def _matcher(self, changed: str) -> Callable[[tuple[str, str], V], bool]:
        record_id = self._record_id
        if record_id is None:  # the change id is "<org_id>/<name>"
            return lambda key, _: f"{key[0]}/{key[1]}" == changed
        # A cached miss (no record id) goes on any change of its kind: the changed record's id
        # does not say whether it is the one the miss was looking for.
        return lambda key, value: record_id(value) in (changed, None)


class OrgIdsCache(_Subscriber):
    """The ids of every org, per worker, for the master key's lookups across orgs: re-read after
    an ``org`` change (one was created or deleted), after ``*``, and after ``ttl`` as a safety net.
    A read racing with a change is used once and not cached (generation check)."""

    def __init__(self, orgs: OrgRepository, changes: ChangeBus | None, *, ttl: float) -> None:
        self._orgs = orgs
        self._changes = changes
        self._ttl = ttl
        self._cached: tuple[float, tuple[str, ...]] | None = None
        self._generation = 0

    async def all(self) -> tuple[str, ...]:
        cached = self._cached
        if cached is not None and time.monotonic() - cached[0] < current_ttl(self._changes, self._ttl):
            return cached[1]
        generation = self._generation
        ids = tuple(org.id for org in await self._orgs.list())
        if generation == self._generation:
            self._cached = (time.monotonic(), ids)
        return ids

    def _on_change(self, change: Change) -> None:
        if change.kind in ("org", "*"):
            self._generation += 1
            self._cached = None
