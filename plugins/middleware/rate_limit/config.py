"""``[middleware.rate-limit]``: defaults per scope and limits per model."""

from __future__ import annotations

from typing import Annotated

import msgspec

from junction.traffic.estimate import ReservationConfig

Count = Annotated[int, msgspec.Meta(ge=0, le=2**31 - 1)]


class ScopeLimits(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    """Requests and tokens a minute (``None``: unlimited)."""

    rpm: Count | None = None
    tpm: Count | None = None


class RateLimitConfig(ReservationConfig):
    #: For every key (any authenticated caller) without limits of its own.
    keys: ScopeLimits = ScopeLimits()
    #: For every org without limits of its own (shared by all its keys and bridges).
    orgs: ScopeLimits = ScopeLimits()
    #: For every bridge without limits of its own (shared by all its callers).
    bridges: ScopeLimits = ScopeLimits()
    #: Gateway-wide, per model as the call routes it (``provider/model`` or an alias).
    models: dict[str, ScopeLimits] = {}
    #: Prefix of the Redis keys.
    prefix: str = "jn:rl"
