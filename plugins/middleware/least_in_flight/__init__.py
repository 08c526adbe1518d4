"""The ``least-in-flight`` routing policy: an alias's deployment with the fewest calls in flight
(counted by this worker, from the attempt's start to the end of its answer — a stream's last
event) goes first, ties drawn by weight; then the others by the same count, then the fallbacks,
with the shared retry rules (:mod:`junction.routing.retries`).

It counts through a ``route``-phase stage, so it is off by default; select it with both::

    [routing]
    policy = "least-in-flight"

    [middleware.least-in-flight]
    enabled = true
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import AsyncIterator

from junction.plugins import (
    AttemptAnswer,
    Call,
    Deployment,
    MiddlewareSpec,
    NextAttempt,
    OpenedStream,
    PluginContext,
    Stage,
    StagePlacement,
    hookimpl,
)
from junction.routing.retries import RetryConfig, RetryingPolicy
from junction.schemas.stream import StreamEvent


class LeastInFlightConfig(RetryConfig):
    """``[middleware.least-in-flight]``: the shared retry rules."""


class LeastInFlight(RetryingPolicy, Stage):
    name = "least-in-flight"

    def __init__(self, config: LeastInFlightConfig, context: PluginContext | None = None) -> None:
        super().__init__(config, context.settings.models if context is not None else None)
        self.in_flight: defaultdict[str, int] = defaultdict(int)

    def rank(self, call: Call, primary: list[Deployment]) -> list[Deployment]:
        # ties are drawn by weight (a weighted random order: the largest r^(1/weight) first)
        in_flight = self.in_flight
        return sorted(primary, key=lambda d: (in_flight.get(d.label, 0), -random.random() ** (1 / d.weight)))

    async def attempt(self, call: Call, deployment: Deployment, next: NextAttempt) -> AttemptAnswer:
        label = deployment.label
        self.in_flight[label] += 1
        try:
            answer = await next(call, deployment)
        except BaseException:
            self._done(label)
            raise
        if isinstance(answer, OpenedStream):
            return OpenedStream(answer.first, self._counted(label, answer.rest))
        self._done(label)
        return answer

    def _done(self, label: str) -> None:
        left = self.in_flight[label] - 1
        if left:
            self.in_flight[label] = left
        else:  # nothing kept for idle deployments (labels include client-chosen model names)
            del self.in_flight[label]

    async def _counted(self, label: str, rest: AsyncIterator[StreamEvent]) -> AsyncIterator[StreamEvent]:
        try:
            async for event in rest:
                yield event
        finally:
            self._done(label)
            await rest.aclose()  # type: ignore[attr-defined]


@hookimpl
def register_middleware(register):
    register(MiddlewareSpec(name="least-in-flight", config_type=LeastInFlightConfig, create=LeastInFlight,
                            enabled_by_default=False, stage=StagePlacement(phase="route")))
