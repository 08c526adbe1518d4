"""Settling after the answer, off the latency path: each settle is a task the plugin tracks, so
the client never waits for it and shutdown waits for every one (bounded) before the store closes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from app.plugins.store_guard import StoreGuard, StoreUnavailable

log = logging.getLogger("junction.traffic")


class Settler:
    """Runs settles in the background through a plugin's :class:`StoreGuard`."""

    def __init__(self, guard: StoreGuard) -> None:
        self._guard = guard
        self._pending: set[asyncio.Task[None]] = set()
        #: Settles that could not reach the store (their reservations lapse instead).
        self.lost = 0

    def run(self, operation: Callable[[], Awaitable[object]]) -> None:
        task = asyncio.get_running_loop().create_task(self._settle(operation))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _settle(self, operation: Callable[[], Awaitable[object]]) -> None:
        try:
            await self._guard.run(operation)
        except StoreUnavailable:
            self.lost += 1
            log.warning("%s: a settle did not reach the store; its reservation lapses instead",
                        self._guard.name)

    async def drain(self, timeout: float = 5.0) -> None:
        """Wait (at most ``timeout`` seconds) for the settles in flight."""
        if self._pending:
            await asyncio.wait(list(self._pending), timeout=timeout)
