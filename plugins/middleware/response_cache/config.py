"""``[middleware.response-cache]``: the response cache's settings (see the package docstring)."""

from __future__ import annotations

from junction.errors import ConfigError
from junction.plugins.store_guard import GuardedConfig


class ResponseCacheConfig(GuardedConfig, kw_only=True):
    #: How long a stored answer is served, unless a bridge's entry below or the request's
    #: ``x-junction-cache-ttl`` header says otherwise.
    ttl_seconds: int = 3600
    #: Per bridge (by bridge id): its answers' TTL; 0 stores none of them.
    bridge_ttl_seconds: dict[str, int] = {}
    #: The highest TTL a request's ``x-junction-cache-ttl`` may ask for (higher values are capped).
    max_ttl_seconds: int = 86400
    #: Concurrent identical misses wait this long at most for the first one's answer (then go
    #: upstream themselves); 0 turns single-flight off.
    single_flight_seconds: float = 30.0
    #: Answers larger than this (encoded) are not stored.
    max_entry_bytes: int = 1024 * 1024
    #: Redis key prefix (entries are ``<prefix><sha256>``, their single-flight locks ``…:lock``).
    key_prefix: str = "junction:cache:"
    #: In-memory backend only (no Redis cache store): the most entries kept, oldest evicted first.
    memory_max_entries: int = 10000
    #: With Redis: an entry this worker found or stored is also kept in its memory this long (never
    #: past its TTL), so a hot entry's hits cost no round trip; 0 turns it off.
    local_seconds: float = 1.0
    #: With Redis: the most entries each worker keeps so.
    local_max_entries: int = 1024

    def check(self) -> None:
        for name in ("ttl_seconds", "max_ttl_seconds", "max_entry_bytes", "memory_max_entries", "local_seconds",
                     "local_max_entries", "single_flight_seconds"):
            if getattr(self, name) < 0:
                raise ConfigError(f"middleware.response-cache.{name}: must be at least 0")
        for bridge, ttl in self.bridge_ttl_seconds.items():
            if ttl < 0:
                raise ConfigError(f"middleware.response-cache.bridge_ttl_seconds.{bridge}: must be at least 0")
