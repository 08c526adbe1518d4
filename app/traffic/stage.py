"""What the rate-limit and budget stages share: a store guard, the settle queue, call ids, the
pipelining Redis connection for their batches, the limit source, and the lifecycle that goes with them
(start listening for org changes; on close, send queued settles before the store closes), and
settling once every call has ended, however it ended: a hook on the call (``Call.when_ended``),
not a layer around it. A stream that crosses a budget or a token limit while running is
finished, not cut: its reservation already covered its output cap, and the overspend bound
(README, *Rate limits and budgets*) holds either way."""

from __future__ import annotations

from typing import Any

from junction.plugins import Call, PluginContext, Stage
from junction.plugins.store_guard import StoreGuard
from junction.traffic.estimate import CallIds, ReservationConfig
from junction.traffic.limits import LimitSource
from junction.traffic.settle import Settler


class TrafficStage(Stage):
    """Base of the admission stages that keep shared counters (see the module docstring)."""

    def __init__(self, name: str, config: ReservationConfig, context: PluginContext, prefix: str,
                 scripts: tuple[str, ...]) -> None:
        self._redis: Any = context.redis
        self._guard = StoreGuard(name, config)
        #: Where the call's batches go: one connection pipelining every plugin's batches.
        self._pipeline: Any = context.redis_pipeline
        if self._pipeline is not None:
            self._pipeline.load(*scripts)
        self._settler = Settler(self._guard, self._pipeline)
        self._ids = CallIds()
        self._limits = LimitSource(context)
        self._prefix = prefix
        #: The end-of-call hook, bound once (not per call): see :meth:`_settle`.
        self._on_end = self._settle

    async def start(self) -> None:
        self._limits.start()

    async def close(self) -> None:
        await self._settler.drain()
        self._limits.close()

    @property
    def guard(self) -> StoreGuard:
        return self._guard

    def _settle(self, call: Call) -> None:
        """Replace the call's reservation with what it used (queued, never awaited here): the
        hook (:meth:`Call.when_ended`) a subclass registers once the call holds a reservation."""
        raise NotImplementedError
