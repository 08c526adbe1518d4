"""What ``GET /api/v1/admin/keys/{id}`` (and orgs, bridges) show under ``usage``: current use
against each limit and budget, as the enabled ``rate-limit`` and ``budget`` plugins count it."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol, runtime_checkable

import msgspec

from junction.plugins.store_guard import StoreUnavailable
from junction.traffic.limits import Limits


class LimitUsage(msgspec.Struct, kw_only=True):
    """Use of one per-minute limit over the last minute (a sliding window)."""

    limit: int | None
    used: int
    remaining: int | None

    @classmethod
    def of(cls, limit: int | None, used: int) -> LimitUsage:
        return cls(limit=limit, used=used, remaining=None if limit is None else max(limit - used, 0))


class BudgetUsage(msgspec.Struct, kw_only=True):
    """Spend in the current UTC calendar period (``period`` ``None``: a budget that never resets)."""

    limit_usd: float
    period: str | None
    #: When the current period ends (``None``: never).
    resets_at: datetime | None
    spent_usd: float
    #: Held by calls in flight (their reservations), not spent yet.
    reserved_usd: float
    remaining_usd: float


class Usage(msgspec.Struct, kw_only=True, omit_defaults=True):
    requests: LimitUsage | None = None
    tokens: LimitUsage | None = None
    budget: BudgetUsage | None = None
    #: The plugins whose store did not answer (e.g. Redis down): their parts are missing, not zero.
    unavailable: list[str] = []


@runtime_checkable
class UsageReporter(Protocol):
    """A plugin that can say how much of a scope's limits is used (``scope``: key, org, bridge)."""

    async def usage(self, scope: str, scope_id: str, own: Limits) -> Usage: ...


async def usage_of(components: Any, scope: str, scope_id: str, record: Any) -> Usage | None:
    """The merged report of the enabled plugins (``components``: plugin name → object), or
    ``None`` when neither is enabled. A plugin whose store is out leaves its part out, and is
    named in ``unavailable``."""
    merged = Usage()
    found = False
    own = Limits.of(record)
    for name in ("rate-limit", "budget"):
        reporter = components.get(name)
        if not isinstance(reporter, UsageReporter):
            continue
        found = True
        try:
            part = await reporter.usage(scope, scope_id, own)
        except StoreUnavailable:
            merged.unavailable.append(name)
            continue
        for field in Usage.__struct_fields__:
            value = getattr(part, field)
            if value is not None:
                setattr(merged, field, value)
    return merged if found else None
