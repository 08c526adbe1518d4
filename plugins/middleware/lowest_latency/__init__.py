"""The ``lowest-latency`` routing policy: an alias's deployments ordered by the exponentially
weighted moving average of their time to first byte (the whole answer for JSON, the first event
of a stream), as this worker measured it; a deployment not measured yet goes first, so each is;
a failed attempt counts as ``failure_penalty_ms``. With probability ``explore`` the order is
drawn by weight instead, so a deployment that was slow once is measured again. Then the
fallbacks, with the shared retry rules (:mod:`junction.routing.retries`).
"""

from __future__ import annotations

import random

from junction.errors import ConfigError
from junction.plugins import Attempt, Call, Deployment, MiddlewareSpec, PluginContext, Retry, hookimpl
from junction.routing.retries import RetryConfig, RetryingPolicy


class LowestLatencyConfig(RetryConfig):
    #: Weight of the newest measurement in the average (0 < alpha <= 1).
    alpha: float = 0.3
    #: Share of calls ordered by weight instead, to keep measuring every deployment.
    explore: float = 0.05
    #: What a failed attempt counts as, in milliseconds.
    failure_penalty_ms: float = 5000.0


class LowestLatency(RetryingPolicy):
    name = "lowest-latency"

    def __init__(self, config: LowestLatencyConfig, context: PluginContext | None = None) -> None:
        super().__init__(config, context.settings.models if context is not None else None)
        if not 0 < config.alpha <= 1:
            raise ConfigError("middleware.lowest-latency.alpha: must be in (0, 1]")
        if not 0 <= config.explore <= 1:
            raise ConfigError("middleware.lowest-latency.explore: must be in [0, 1]")
        self.alpha, self.explore, self.penalty = config.alpha, config.explore, config.failure_penalty_ms
        #: EWMA of time to first byte (ms) by deployment label.
        self.ttfb: dict[str, float] = {}

    def rank(self, call: Call, primary: list[Deployment]) -> list[Deployment]:
        if self.explore and random.random() < self.explore:
            return sorted(primary, key=lambda d: random.random() ** (1 / d.weight), reverse=True)
        return sorted(primary, key=lambda d: self.ttfb.get(d.label, -1.0))

    async def attempted(self, call: Call, attempt: Attempt) -> Retry | None:
        sample = attempt.ttfb_ms if attempt.ok and attempt.ttfb_ms is not None else self.penalty
        known = self.ttfb.get(attempt.deployment)
        if known is None and len(self.ttfb) >= 4096:
            self.ttfb.clear()  # bounded (labels include client-chosen model names): measured again
        self.ttfb[attempt.deployment] = sample if known is None else known + self.alpha * (sample - known)
        return await super().attempted(call, attempt)


@hookimpl
def register_middleware(register):
    register(MiddlewareSpec(name="lowest-latency", config_type=LowestLatencyConfig, create=LowestLatency))
