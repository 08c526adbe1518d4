"""``[middleware.api-keys]``: the in-process key cache."""

from __future__ import annotations

from app.plugins import MiddlewareConfig


class ApiKeysConfig(MiddlewareConfig):
    #: A cached key is re-read from the store after this long even without a change notification
    #: (a safety net; revocation normally reaches every worker through the change bus at once).
    cache_ttl_seconds: float = 300.0
    #: At most this many keys are cached per worker; unknown prefixes are remembered up to this many.
    max_cached_keys: int = 100_000
