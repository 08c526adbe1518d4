"""Where the limits of a call come from: the caller's principal (its key's ``rpm``, ``tpm``,
``budget_usd``, ``budget_period``), its org's document and its bridge's document, each falling
back to the plugin's configured default for that scope.

Org limits are read from the document store once per worker and kept until a change to the org
arrives on the change bus (or after a TTL, the safety net): no store read per call. A bridge's
limits come with the bridge the ``bridges`` stage already resolved for the call.

What a stage makes of a call's limits (its windows or ledgers, their Redis keys, the script
call packed once) is kept too, in a :class:`Plans` cache keyed by everything it was made from
(:meth:`LimitSource.plan_key`: the caller's id and limits, the org, the bridge's limits, the
model): a new key, a changed bridge or another model is another entry, and a change to an org
(or every change, after a gap on the bus) empties the cache, as does the org entry's TTL.
"""

from __future__ import annotations

import time
from collections.abc import Hashable, Mapping
from typing import Any, Generic, Literal, TypeVar

import msgspec

from junction.errors import NotFound
from junction.plugins.call import Call
from junction.stores.documents.bridges import ResolvedBridge

Scope = Literal["key", "org", "bridge", "model"]
P = TypeVar("P")
BudgetPeriod = Literal["day", "month"]


class Limits(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """The limits one scope has (``None``: none of that kind)."""

    rpm: int | None = None
    tpm: int | None = None
    budget_usd: float | None = None
    budget_period: BudgetPeriod | None = None

    @classmethod
    def of(cls, record: Any) -> Limits:
        return cls(rpm=record.rpm, tpm=record.tpm, budget_usd=record.budget_usd,
                   budget_period=record.budget_period)

    def over(self, default: Limits) -> Limits:
        """These limits, each unset one taken from ``default``."""
        budget = self.budget_usd is not None
        return Limits(rpm=self.rpm if self.rpm is not None else default.rpm,
                      tpm=self.tpm if self.tpm is not None else default.tpm,
                      budget_usd=self.budget_usd if budget else default.budget_usd,
                      budget_period=self.budget_period if budget else default.budget_period)


NO_LIMITS = Limits()
#: Org limits are re-read after this long even without a change notice (a lost notice heals).
ORG_TTL_SECONDS = 30.0


class LimitSource:
    """The limits of each scope of a call (see the module docstring). One per plugin instance."""

    def __init__(self, context: Any) -> None:
        self._documents = context.documents
        self._changes = context.changes
        self._orgs: dict[str, tuple[float, Limits]] = {}
        #: Bumped by every change to an org's limits this source heard of.
        self.generation = 0
        self._unsubscribe: Any = None

    @staticmethod
    def plan_key(call: Call, *extra: Hashable) -> tuple[Hashable, ...]:
        """What a plan made from the call's limits depends on: the caller and its own limits,
        the org, the bridge and its limits (the org's limits are read through this source, whose
        changes empty the :class:`Plans`), and ``extra`` (the model, ...)."""
        principal = call.principal
        bridge = None
        if call.bridge_id is not None:
            resolved = call.state.get(ResolvedBridge)
            if resolved is not None:
                record = resolved.bridge
                bridge = (record.rpm, record.tpm, record.budget_usd, record.budget_period)
        return (principal.id, principal.kind, principal.rpm, principal.tpm, principal.budget_usd,
                principal.budget_period, call.org_id, call.bridge_id, bridge, *extra)

    def org_expires(self, org_id: str | None) -> float:
        """When the cached limits of ``org_id`` are read again (monotonic); now + TTL without one."""
        entry = self._orgs.get(org_id) if org_id is not None else None
        return entry[0] if entry is not None else time.monotonic() + ORG_TTL_SECONDS

    def start(self) -> None:
        if self._changes is not None and self._unsubscribe is None:
            self._unsubscribe = self._changes.subscribe(self._on_change)

    def close(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    def _on_change(self, change: Any) -> None:
        if change.kind == "*":
            self.generation += 1
            self._orgs.clear()
        elif change.kind == "org":
            self.generation += 1
            self._orgs.pop(change.id, None)

    async def scopes(self, call: Call, defaults: Mapping[str, Limits]) -> list[tuple[Scope, str, Limits]]:
        """``(scope, id, limits)`` of the call's key (unless the master key's), org and bridge,
        each over its default in ``defaults`` (keyed ``keys``, ``orgs``, ``bridges``)."""
        found: list[tuple[Scope, str, Limits]] = []
        principal = call.principal
        if principal.kind != "master":
            found.append(("key", principal.id, Limits.of(principal).over(defaults["keys"])))
        if call.org_id is not None:
            found.append(("org", call.org_id, (await self.org(call.org_id)).over(defaults["orgs"])))
        if call.bridge_id is not None:
            found.append(("bridge", call.bridge_id, self.bridge(call).over(defaults["bridges"])))
        return found

    @staticmethod
    def key(call: Call) -> Limits:
        return Limits.of(call.principal)

    @staticmethod
    def bridge(call: Call) -> Limits:
        resolved = call.state.get(ResolvedBridge)
        return Limits.of(resolved.bridge) if resolved is not None else NO_LIMITS

    async def org(self, org_id: str) -> Limits:
        entry = self._orgs.get(org_id)
        if entry is not None and time.monotonic() < entry[0]:
            return entry[1]
        if self._documents is None:
            return NO_LIMITS
        generation = self.generation
        try:
            limits = Limits.of(await self._documents.orgs.get(org_id))
        except NotFound:
            limits = NO_LIMITS  # the org is gone: its keys fail authentication soon anyway
        if generation == self.generation:
            if len(self._orgs) >= 100_000:
                self._orgs.clear()
            self._orgs[org_id] = (time.monotonic() + ORG_TTL_SECONDS, limits)
        return limits


class Plans(Generic[P]):
    """A stage's plans by :meth:`LimitSource.plan_key` (see the module docstring); bounded."""

    __slots__ = ("_source", "_plans", "_generation", "_limit")

    def __init__(self, source: LimitSource, limit: int = 10_000) -> None:
        self._source = source
        self._plans: dict[tuple[Hashable, ...], tuple[float, P]] = {}
        self._generation = source.generation
        self._limit = limit

    def get(self, key: tuple[Hashable, ...]) -> P | None:
        if self._generation != self._source.generation:
            self._plans.clear()
            self._generation = self._source.generation
            return None
        entry = self._plans.get(key)
        if entry is None or entry[0] <= time.monotonic():
            return None
        return entry[1]

    def put(self, key: tuple[Hashable, ...], plan: P, expires: float, generation: int) -> None:
        """Keep ``plan`` until ``expires`` (monotonic), unless the limits changed while it was
        made (``generation``: the source's when the making began)."""
        if generation != self._source.generation:
            return
        if len(self._plans) >= self._limit:
            self._plans.clear()
        self._plans[key] = (expires, plan)
