"""``[middleware.budget]``: default budgets per scope."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from junction.traffic.estimate import ReservationConfig


class ScopeBudget(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    """USD per UTC calendar ``period`` (``None``: no budget)."""

    budget_usd: Annotated[float, msgspec.Meta(ge=0)] | None = None
    budget_period: Literal["day", "month"] | None = "month"


class BudgetConfig(ReservationConfig):
    #: For every key without a budget of its own.
    keys: ScopeBudget = ScopeBudget()
    #: For every org without a budget of its own (shared by all its keys and bridges).
    orgs: ScopeBudget = ScopeBudget()
    #: For every bridge without a budget of its own.
    bridges: ScopeBudget = ScopeBudget()
    #: Prefix of the Redis keys.
    prefix: str = "jn:budget"
