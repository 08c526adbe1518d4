"""What the rate-limit and budget stages share: a store guard, the settle queue, call ids, the
coalescing Redis client for their batches, the limit source, and the lifecycle that goes with them
(start listening for org changes; on close, send queued settles before the store closes)."""

from __future__ import annotations

from typing import Any

from app.plugins import PluginContext, Stage
from app.plugins.store_guard import StoreGuard
from app.traffic.coalesce import CoalescingRedis
from app.traffic.estimate import CallIds, ReservationConfig
from app.traffic.limits import LimitSource
from app.traffic.settle import Settler


class TrafficStage(Stage):
    """Base of the admission stages that keep shared counters (see the module docstring)."""

    def __init__(self, name: str, config: ReservationConfig, context: PluginContext, prefix: str) -> None:
        self._redis: Any = context.redis
        self._guard = StoreGuard(name, config)
        self._settler = Settler(self._guard, context.redis)
        self._ids = CallIds()
        self._coalescing = (CoalescingRedis(context.redis, config.store_timeout_seconds)
                            if context.redis is not None else None)
        self._limits = LimitSource(context)
        self._prefix = prefix

    async def start(self) -> None:
        self._limits.start()

    async def close(self) -> None:
        await self._settler.drain()
        self._limits.close()

    @property
    def guard(self) -> StoreGuard:
        return self._guard
