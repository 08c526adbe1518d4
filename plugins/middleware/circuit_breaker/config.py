"""``[middleware.circuit-breaker]`` (see the package docstring)."""

from __future__ import annotations

import msgspec

from junction.errors import ConfigError, error_classes
from junction.plugins.store_guard import GuardedConfig
from junction.routing.retries import DEFAULT_RETRY_ON


class CircuitBreakerConfig(GuardedConfig, kw_only=True):
    #: Failures of one deployment within ``window_seconds`` that open its breaker.
    failure_threshold: int = 5
    window_seconds: float = 30.0
    #: How long an open breaker refuses attempts before it lets one probe through (half-open).
    open_seconds: float = 30.0
    #: How long the probe may take before another attempt may probe instead.
    probe_seconds: float = 10.0
    #: How long a worker trusts what it last heard of a closed breaker before asking Redis again
    #: (one round trip per deployment per this many seconds, none per call).
    refresh_seconds: float = 1.0
    #: Error classes that count as the deployment's failures (not the caller's: 4xx never count).
    failure_classes: list[str] = msgspec.field(default_factory=lambda: list(DEFAULT_RETRY_ON))
    key_prefix: str = "junction:breaker:"

    def check(self) -> None:
        if self.failure_threshold < 1:
            raise ConfigError("middleware.circuit-breaker.failure_threshold: must be at least 1")
        for name in ("window_seconds", "open_seconds", "probe_seconds"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"middleware.circuit-breaker.{name}: must be more than 0")
        if self.refresh_seconds < 0:
            raise ConfigError("middleware.circuit-breaker.refresh_seconds: must be at least 0")
        known = error_classes()
        for index, name in enumerate(self.failure_classes):
            if name not in known:
                raise ConfigError(f"middleware.circuit-breaker.failure_classes[{index}]: {name!r} is not an "
                                  f"error class (one of {', '.join(sorted(known))})")
