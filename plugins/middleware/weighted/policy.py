"""The weighted routing policy and its retry rules (see the package docstring)."""

from __future__ import annotations

import random
from collections.abc import Sequence

import msgspec

from app.errors import ConfigError, error_classes
from app.plugins import Deployment, MiddlewareConfig, PluginContext
from app.plugins.call import Attempt, Call
from app.plugins.stages import Retry

#: What another deployment may well answer: upstream failures (5xx, unreachable, timed out,
#: overloaded) and an upstream's rate limit. A 4xx about the request itself is not retried.
DEFAULT_RETRY_ON = ["upstream_error", "upstream_unavailable", "timeout_error", "overloaded_error",
                    "rate_limit_error"]


class WeightedConfig(MiddlewareConfig):
    retry_on: list[str] = msgspec.field(default_factory=lambda: list(DEFAULT_RETRY_ON))
    #: Attempts per call in all; 0 tries every candidate once.
    max_attempts: int = 0
    #: Wait before the second attempt; doubled before each later one, at most ``max_backoff_seconds``.
    backoff_seconds: float = 0.0
    max_backoff_seconds: float = 10.0
    #: Wait at least the upstream's ``Retry-After`` (capped by ``max_backoff_seconds``).
    honour_retry_after: bool = False


class WeightedPolicy:
    def __init__(self, config: WeightedConfig, context: PluginContext | None = None) -> None:
        known = error_classes()
        for index, name in enumerate(config.retry_on):
            if name not in known:
                raise ConfigError(f"middleware.weighted.retry_on[{index}]: {name!r} is not an error class "
                                  f"(one of {', '.join(sorted(known))})")
        if config.max_attempts < 0:
            raise ConfigError("middleware.weighted.max_attempts: must be at least 0")
        if config.backoff_seconds < 0 or config.max_backoff_seconds < 0:
            raise ConfigError("middleware.weighted.backoff_seconds: must be at least 0")
        self._retry_on = frozenset(config.retry_on)
        self._config = config

    async def order(self, call: Call, candidates: Sequence[Deployment]) -> Sequence[Deployment]:
        if len(candidates) == 1:  # a provider/model: nothing to draw or cut
            return candidates
        primary = [d for d in candidates if not d.fallback]
        if len(primary) > 1:
            first = random.choices(range(len(primary)), weights=[d.weight for d in primary])[0]
            primary.insert(0, primary.pop(first))
        ordered = primary + [d for d in candidates if d.fallback]
        if self._config.max_attempts:
            del ordered[self._config.max_attempts:]
        return ordered

    async def attempted(self, call: Call, attempt: Attempt) -> Retry | None:
        if attempt.ok or attempt.error_class not in self._retry_on:
            return None
        config = self._config
        failures = sum(1 for earlier in call.attempts if not earlier.ok)
        delay = config.backoff_seconds * 2 ** (failures - 1) if config.backoff_seconds else 0.0
        if config.honour_retry_after and attempt.retry_after:
            delay = max(delay, attempt.retry_after)
        return Retry(delay=min(delay, config.max_backoff_seconds))
