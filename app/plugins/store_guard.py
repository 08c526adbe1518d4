"""Bounded calls to the shared store (Redis) for plugins that must not hang when it is slow or down.

Each plugin that keeps shared state (limits, budgets, the response cache, circuit breakers) wraps
its store calls in a :class:`StoreGuard` of its own: a short timeout per call, and a breaker that,
after a failure, skips the store for ``retry_seconds`` — so a dead Redis costs one timeout per
window, not one per request. What the plugin does without its store is its config's
``on_store_error``: ``"open"`` (let the call through, unlimited / uncached) or ``"closed"``
(refuse it with 503 ``store_unavailable``). Every opening of the breaker is logged once, and
counted in :attr:`StoreGuard.failures` and :attr:`StoreGuard.skipped`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Annotated, Literal, TypeVar

import msgspec

from junction.errors import ServiceUnavailable
from junction.plugins.protocols import MiddlewareConfig

T = TypeVar("T")
log = logging.getLogger("junction.store_guard")


class GuardedConfig(MiddlewareConfig):
    """Config of a middleware plugin that keeps shared state: subclass it for your own."""

    #: Without the store: ``"open"`` lets calls through (unlimited, uncached), ``"closed"``
    #: refuses them with 503 ``store_unavailable``.
    on_store_error: Literal["open", "closed"] = "open"
    #: Seconds one store call may take before it counts as failed. (Not 0 or less: every call
    #: would fail at once, and with ``"open"`` the plugin would do nothing, silently.)
    store_timeout_seconds: Annotated[float, msgspec.Meta(gt=0)] = 0.25
    #: After a failure, seconds the store is skipped before it is tried again (one probe).
    store_retry_seconds: Annotated[float, msgspec.Meta(ge=0)] = 5.0


class StoreUnavailable(Exception):
    """The guarded store call did not complete (it failed, timed out, or the breaker is open)."""


class StoreGuard:
    """Runs one plugin's store calls with a timeout and a breaker of its own (see module doc)."""

    __slots__ = ("name", "on_error", "timeout", "retry_seconds", "open_until", "failures", "skipped",
                 "_clock")

    def __init__(self, name: str, config: GuardedConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self.name = name
        self.on_error = config.on_store_error
        self.timeout = config.store_timeout_seconds
        self.retry_seconds = config.store_retry_seconds
        #: While the breaker is open, when (``clock``) the store is tried again; 0.0 while closed.
        #: Hot paths read it before :attr:`healthy` (a property call) to skip that call.
        self.open_until = 0.0
        self._clock = clock
        #: Store calls that failed or timed out, and calls that skipped the store while it was out.
        self.failures = 0
        self.skipped = 0

    @property
    def healthy(self) -> bool:
        return not self.open_until or self._clock() >= self.open_until  # no clock read while closed

    async def run(self, operation: Callable[[], Awaitable[T]]) -> T:
        """``await operation()`` within the timeout; :class:`StoreUnavailable` when it fails,
        times out, or the breaker is open (then ``operation`` is not called at all)."""
        if self._clock() < self.open_until:
            self.skipped += 1
            raise StoreUnavailable(self.name)
        try:
            async with asyncio.timeout(self.timeout):
                result = await operation()
        except (OSError, TimeoutError, ConnectionError, _redis_errors()) as error:
            self.trip(error)
            raise StoreUnavailable(self.name) from error
        self.answered()
        return result

    def answered(self) -> None:
        """A store call completed: close the breaker if it was open."""
        if self.open_until:
            log.warning("%s: the store answers again; %d calls went without it", self.name, self.skipped)
            self.open_until = 0.0

    def trip(self, error: BaseException) -> None:
        """A store call failed: skip the store for ``retry_seconds``."""
        self.failures += 1
        first = self.open_until == 0.0
        self.open_until = self._clock() + self.retry_seconds
        if first:
            log.warning("%s: the store failed (%s: %s); on_store_error=%s for the next %.1f s",
                        self.name, type(error).__name__, error, self.on_error, self.retry_seconds)

    def refusal(self) -> ServiceUnavailable:
        """The error a fail-closed plugin raises when its store is out."""
        return ServiceUnavailable(f"{self.name} cannot reach its store; try again shortly",
                                  code="store_unavailable",
                                  headers={"Retry-After": str(max(1, round(self.retry_seconds)))})


def _redis_errors() -> type[BaseException]:
    """redis-py's base error, without importing redis where no Redis store is configured."""
    try:
        from redis.exceptions import RedisError
    except ImportError:  # pragma: no cover - redis is a dependency
        return OSError
    return RedisError
