"""Settling after the answer without a Redis round trip of its own where avoidable.

A settle (or a cache store) is not sent when queued: it is deferred on the worker's pipelining
connection (:meth:`~junction.stores.redis_pipeline.PipelinedRedis.defer`), one queue for every
plugin, and the next call's batch carries every deferred command in its own write, so under load
settles cost no round trip at all; when no batch comes within the connection's ``settle_delay``
(20 ms), what is queued goes by itself, in one write. Nothing waits for settles on the latency
path, and shutdown sends what is queued and waits (bounded) before the store closes.

A settle that cannot reach the store is counted in :attr:`Settler.lost` and logged: its
reservation then lapses on its own (rate windows after a minute; budget reservations after
:data:`~junction.traffic.ledger.RESERVATION_TTL_MS`).
"""

from __future__ import annotations

import logging
from typing import Any

from junction.plugins.store_guard import StoreGuard, StoreUnavailable

log = logging.getLogger("junction.traffic")


class Settler:
    """One plugin's settles (see the module docstring); ``redis`` is the pipelining connection
    (:class:`~junction.stores.redis_pipeline.PipelinedRedis`)."""

    __slots__ = ("_guard", "_on_failure", "_redis", "lost")

    def __init__(self, guard: StoreGuard, redis: Any) -> None:
        self._guard = guard
        self._redis = redis
        self._on_failure = self._failed  # bound once, not per settle
        #: Settles that could not reach the store (their reservations lapse instead).
        self.lost = 0

    def add(self, command: tuple[Any, ...]) -> None:
        """Defer ``command`` (``(prepared, *rest)`` or ``("EVALSHA", ...)``) to a later write."""
        guard = self._guard
        if guard.open_until and not guard.healthy:  # the store is out: the reservation lapses instead
            guard.skipped += 1
            self.lost += 1
            return
        self._redis.defer(command, self._on_failure)

    def _failed(self, error: BaseException) -> None:
        self.lost += 1
        if isinstance(error, (OSError, TimeoutError, ConnectionError)):
            self._guard.trip(error)
        elif not isinstance(error, StoreUnavailable):
            log.warning("%s: a settle failed: %s", self._guard.name, error)

    async def drain(self, timeout: float = 5.0) -> None:
        """Send what is deferred and wait (at most ``timeout`` seconds) for the replies."""
        await self._redis.drain(timeout)
