"""Work a stage starts after its answer went out (storing a cache entry, counting, releasing a
lock): it costs the client nothing, stays referenced until it ends, and is awaited at close."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

from junction.plugins.store_guard import StoreUnavailable


class BackgroundWork:
    """Tasks of one stage. A failure is logged with ``what``, except :class:`StoreUnavailable`,
    which the stage's store guard logged when it opened."""

    def __init__(self, log: logging.Logger, what: str) -> None:
        self._log = log
        self._what = what
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    async def drain(self) -> None:
        """Wait for every task started so far (at close: nothing accepted is dropped)."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (error := task.exception()) is not None:
            if isinstance(error, StoreUnavailable):
                return
            self._log.error("%s failed", self._what, exc_info=error)
