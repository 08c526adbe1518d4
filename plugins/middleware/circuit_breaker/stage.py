"""The breaker stage: refuses attempts to a deployment whose breaker is open, lets one probe
through when it is half-open, and records each attempt's failure (see the package docstring)."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Callable

from junction.errors import JunctionError, UpstreamOverloaded
from junction.middleware.circuit_breaker.config import CircuitBreakerConfig
from junction.middleware.circuit_breaker.stores import (
    CLOSED,
    MAX_TRACKED,
    OPEN,
    PROBE,
    MemoryBreakers,
    RedisBreakers,
)
from junction.plugins import AttemptAnswer, Call, Deployment, NextAttempt, PluginContext, Stage
from junction.plugins.store_guard import StoreGuard, StoreUnavailable

log = logging.getLogger("junction.circuit_breaker")

Step = tuple[int, int]


class CircuitBreakerStage(Stage):
    def __init__(self, config: CircuitBreakerConfig, context: PluginContext) -> None:
        config.check()
        self.guard = StoreGuard("circuit-breaker", config)
        args = (config.failure_threshold, config.window_seconds, config.open_seconds, config.probe_seconds)
        self.store: RedisBreakers | MemoryBreakers
        if context.redis is not None:
            self.store = RedisBreakers(context.redis, config.key_prefix, *args)
            self.refresh = config.refresh_seconds
        else:
            self.store = MemoryBreakers(*args)
            self.refresh = 0.0  # memory is the truth itself: nothing to cache
        self.probe_seconds = config.probe_seconds
        self.counted = frozenset(config.failure_classes)
        #: What this worker last heard of each breaker: (CLOSED or OPEN, trusted until, monotonic).
        self._views: dict[str, tuple[int, float]] = {}
        #: Attempts refused because a breaker was open, for logs and tests.
        self.refused = 0

    async def attempt(self, call: Call, deployment: Deployment, next: NextAttempt) -> AttemptAnswer:
        label = deployment.label
        probing = False
        view = self._views.get(label)
        now = time.monotonic()
        if view is not None and view[1] > now:
            if view[0] == OPEN:
                raise self._refuse(label, view[1] - now)
        else:
            heard = await self._step(lambda: self.store.check(label, "1"))
            if heard is not None:
                state, ms = heard
                self._remember(label, heard)
                if state == OPEN:
                    raise self._refuse(label, ms / 1000)
                probing = state == PROBE
        try:
            answer = await next(call, deployment)
        except JunctionError as error:
            if error.error_type in self.counted:
                heard = await self._step(lambda: self.store.fail(label, probing))
                if heard is not None:
                    self._remember(label, heard)
                    if heard[0] == OPEN and heard[1] and not probing:
                        log.warning("%s: circuit opened after repeated failures (%s)", label, error.error_type)
            elif probing:  # the deployment answered; the request itself was at fault
                await self._closed(label)
            raise
        if probing:
            await self._closed(label)
        return answer

    async def _closed(self, label: str) -> None:
        heard = await self._step(lambda: self.store.close(label))
        if heard is not None:
            self._remember(label, heard)
            log.warning("%s: circuit closed (the probe succeeded)", label)

    def _remember(self, label: str, heard: Step) -> None:
        if not self.refresh:
            return
        state, ms = heard
        now = time.monotonic()
        if len(self._views) >= MAX_TRACKED:
            self._views.clear()  # bounded (labels include client-chosen model names): asked again
        if state == CLOSED:
            self._views[label] = (CLOSED, now + self.refresh)
        elif state == OPEN:
            self._views[label] = (OPEN, now + min(ms / 1000, self.refresh))
        else:  # this worker probes: its other calls wait for the probe (asking again soon)
            self._views[label] = (OPEN, now + min(self.probe_seconds, self.refresh))

    async def _step(self, operation: Callable[[], Awaitable[Step]]) -> Step | None:
        """A store step, guarded; ``None`` when the store is out and the breaker fails open."""
        try:
            return await self.guard.run(operation)
        except StoreUnavailable:
            if self.guard.on_error == "closed":
                raise self.guard.refusal() from None
            return None

    def _refuse(self, label: str, seconds: float) -> JunctionError:
        self.refused += 1
        return UpstreamOverloaded(f"{label}: its circuit breaker is open after repeated failures; "
                                  "the gateway is not sending it requests for now",
                                  code="circuit_open", headers={"Retry-After": str(max(1, math.ceil(seconds)))})
