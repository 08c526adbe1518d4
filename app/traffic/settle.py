"""Settling after the answer without a Redis round trip of its own where avoidable.

A settle is queued here, not sent. The next call's admission carries every queued settle in its
own pipelined round trip (:meth:`Settler.ride`, from the plugin's ``enter``), so under load
settles cost no round trip at all; when no call comes within ``delay`` seconds, the queue is
sent by itself, in one pipeline. The timer that does so is set when a settle is queued and none
is set, and a ride leaves it set: when it fires it sends only settles that waited ``delay``,
else it waits for the oldest one's turn. One timer per ``delay`` at most, not one set and
cancelled per call, and no lone round trip while calls keep coming. Nothing waits for settles on the latency path, and
shutdown sends what is queued and waits (bounded) before the store closes.

A settle that cannot reach the store is counted in :attr:`Settler.lost` and logged: its
reservation then lapses on its own (rate windows after a minute; budget reservations after
:data:`~junction.traffic.ledger.RESERVATION_TTL_MS`).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from junction.plugins.store_batch import StoreBatch
from junction.plugins.store_guard import StoreGuard, StoreUnavailable

log = logging.getLogger("junction.traffic")


class Settler:
    """Queued settles of one plugin (see the module docstring); ``redis`` is the pipelining
    connection (:class:`~junction.stores.redis_pipeline.PipelinedRedis`)."""

    def __init__(self, guard: StoreGuard, redis: Any, delay: float = 0.02) -> None:
        self._guard = guard
        self._redis = redis
        self._delay = delay
        self._queued: list[tuple[str, list[str], list[object]]] = []
        self._timer: asyncio.TimerHandle | None = None
        #: When the oldest queued settle was queued (loop time).
        self._oldest = 0.0
        self._sending: set[asyncio.Task[None]] = set()
        #: Settles that could not reach the store (their reservations lapse instead).
        self.lost = 0

    def add(self, script: str, keys: list[str], args: list[object]) -> None:
        if not self._queued:
            loop = asyncio.get_running_loop()
            self._oldest = loop.time()
            if self._timer is None:
                self._timer = loop.call_later(self._delay, self._when_due)
        self._queued.append((script, keys, args))

    def ride(self, batch: StoreBatch) -> None:
        """Put the queued settles on a call's batch, sent with its admission."""
        if not self._queued:
            return
        queued, self._queued = self._queued, []
        for script, keys, args in queued:
            batch.queue(self._guard, _command(script, keys, args), self._heard)

    def _heard(self, result: Any) -> None:
        if isinstance(result, BaseException):
            self.lost += 1
            if not isinstance(result, StoreUnavailable):
                log.warning("%s: a settle failed: %s", self._guard.name, result)

    def _when_due(self) -> None:
        self._timer = None
        if not self._queued:
            return
        loop = asyncio.get_running_loop()
        wait = self._oldest + self._delay - loop.time()
        if wait > 0.001:  # rides took what was due; the rest has not waited long enough yet
            self._timer = loop.call_later(wait, self._when_due)
            return
        self._send_alone()

    def _send_alone(self) -> None:
        if not self._queued:
            return
        queued, self._queued = self._queued, []
        task = asyncio.get_running_loop().create_task(self._send(queued))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send(self, queued: list[tuple[str, list[str], list[object]]]) -> None:
        batch = StoreBatch(self._redis)
        for script, keys, args in queued:
            batch.queue(self._guard, _command(script, keys, args), self._heard)
        await batch.flush()

    async def drain(self, timeout: float = 5.0) -> None:
        """Send what is queued and wait (at most ``timeout`` seconds) for what is in flight."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._send_alone()
        if self._sending:
            await asyncio.wait(list(self._sending), timeout=timeout)


def _command(script: str, keys: list[str], args: list[object]) -> Any:
    return lambda pipe: pipe.eval(script, len(keys), *keys, *args)
