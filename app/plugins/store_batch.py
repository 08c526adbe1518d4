"""One Redis round trip for every admission stage of a call.

Rate limits, budgets and the response cache each need the shared store before a call goes
upstream. Awaited one by one that is a round trip per plugin; queued here it is one: each stage's
``enter`` queues its command with :meth:`StoreBatch.queue` and a callback for the result, and the
first layer that needs a result — a cache stage for its lookup, else the attempt loop just before
the first attempt — awaits :meth:`StoreBatch.flush`. The flush sends everything queued as one
pipeline, then runs every callback in queue order; a callback may record state on the call or
raise a :class:`~junction.errors.JunctionError` (a refusal). Every callback runs even when an earlier
one refused (a budget whose reservation was made must know it, to refund it); the first refusal is
raised after them.

A command may name what to send instead when the call is already known to be answered from a
cache when the batch goes (a response cache's hit kept in the worker's memory): ``hit=None`` sends
nothing (a budget: hits are free, so nothing is reserved and nothing refunded), ``hit=(command,
on_result)`` sends that (a rate limit: the request counts, with no tokens). The cache stage says so
with ``flush(hit=True)``.

Each queued command carries the :class:`~junction.plugins.store_guard.StoreGuard` of its plugin: a
command whose guard is open is not queued (the plugin hears :class:`StoreUnavailable` at once),
the flush waits at most the longest timeout of the queued guards, and when the store fails every
queued guard trips and every callback receives :class:`StoreUnavailable` instead of a result, to
fail open or closed as its plugin is configured.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from junction.errors import JunctionError
from junction.plugins.store_guard import StoreGuard, StoreUnavailable

#: Queues one command on a pipeline (e.g. ``lambda pipe: pipe.eval(SCRIPT, 1, key, *args)``): the
#: plugins' batches go through :class:`~junction.stores.redis_pipeline.PipelinedRedis`, which sends
#: ``eval`` as EVALSHA; a redis-py client's pipeline works too. With a ``PipelinedRedis`` a command
#: may also be the command itself, a tuple (e.g. ``(prepared, call_id, amount)``): nothing to call.
Command = Callable[[Any], object] | tuple[Any, ...]
#: Receives the command's result, or the StoreUnavailable that stood in for it; may raise a refusal.
OnResult = Callable[[Any], None]
#: ``StoreBatch.queue``'s default ``hit``: a known cache hit sends the command as it is.
SAME: Any = object()


class StoreBatch:
    """The commands the stages of one call queued (see the module docstring)."""

    __slots__ = ("_redis", "_queued", "_timeout")

    def __init__(self, redis: Any) -> None:
        self._redis = redis
        self._queued: list[tuple[StoreGuard, Command, OnResult, Any]] = []
        #: The longest timeout of the queued commands' guards.
        self._timeout = 0.0

    def queue(self, guard: StoreGuard, command: Command, on_result: OnResult,
              hit: tuple[Command, OnResult] | None = SAME) -> None:
        """Queue ``command`` for the next flush; ``hit``: what goes instead when the flush is
        a known cache hit's (see the module docstring). When ``guard`` is open (the store is
        out), ``on_result`` receives :class:`StoreUnavailable` now instead."""
        if guard.open_until and not guard.healthy:
            guard.skipped += 1
            on_result(StoreUnavailable(guard.name))
            return
        self._queued.append((guard, command, on_result, hit))
        if guard.timeout > self._timeout:
            self._timeout = guard.timeout

    @property
    def pending(self) -> bool:
        return bool(self._queued)

    async def flush(self, hit: bool = False) -> None:
        """Send what is queued in one round trip and hand out the results (no-op when empty);
        ``hit``: the call is answered from a cache (each command's ``hit`` variant goes)."""
        if not self._queued:
            return
        queued, self._queued = self._queued, []
        if hit:
            queued = [entry if entry[3] is SAME else (entry[0], *entry[3], None)
                      for entry in queued if entry[3] is not None]
            if not queued:
                self._timeout = 0.0
                return
        timeout, self._timeout = self._timeout, 0.0
        redis = self._redis
        try:
            # A PipelinedRedis (its own deadline, no timer per batch), told by a class attribute:
            # this module does not import it (redis-py, ~10 MB of a worker that has no Redis).
            if getattr(redis, "takes_commands", False):
                commands: list[Any] = []
                pipe = None
                for _, command, _, _ in queued:
                    if type(command) is not tuple:  # a recording callable: through a recorder, made once
                        pipe = pipe or redis.pipeline()
                        command = _recorded(pipe, command)
                    commands.append(command)
                results: list[Any] = await redis.execute(commands, timeout)
            else:
                pipe = redis.pipeline(transaction=False)
                for _, command, _, _ in queued:
                    command(pipe)  # type: ignore[operator]
                async with asyncio.timeout(timeout):
                    results = await pipe.execute(raise_on_error=False)
        except (OSError, TimeoutError, ConnectionError, _redis_error()) as error:
            for guard, _, _, _ in queued:
                guard.trip(error)
            unavailable = [StoreUnavailable(guard.name) for guard, _, _, _ in queued]
            results = unavailable
        else:
            for guard, _, _, _ in queued:
                if guard.open_until:
                    guard.answered()
        refusal: JunctionError | None = None
        for (_, _, on_result, _), result in zip(queued, results, strict=True):
            try:
                on_result(result)
            except JunctionError as error:
                refusal = refusal or error
        if refusal is not None:
            raise refusal


def _recorded(pipe: Any, command: Any) -> tuple[Any, ...]:
    command(pipe)
    return pipe.take()


def _redis_error() -> type[BaseException]:
    from redis.exceptions import RedisError

    return RedisError
