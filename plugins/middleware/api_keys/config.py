"""``[middleware.api-keys]``: the in-process key cache."""

from __future__ import annotations

from junction.plugins import MiddlewareConfig


class ApiKeysConfig(MiddlewareConfig):
    #: A cached key is re-read from the store after this long even without a change notification.
    #: Default: 300 s with a Redis cache store (revocation reaches every worker through the change
    #: bus at once; this is a safety net), 1 s with ``memory://`` (whose bus is per process).
    cache_ttl_seconds: float | None = None
    #: At most this many keys are cached per worker; unknown prefixes are remembered up to this many.
    max_cached_keys: int = 100_000
