"""Concurrent calls' store batches in one Redis round trip (auto-pipelining).

Each call's admission is one pipelined round trip (:class:`~app.plugins.store_batch.StoreBatch`).
Under load many calls flush at nearly the same moment, and each round trip costs the worker a
send, a receive and their wake-ups — on a busy host more than the commands themselves. A
:class:`CoalescingRedis` stands in for the shared client when a stage makes a call's batch: a
pipeline it hands out records the commands, and ``execute`` joins them to the next shared
flush. One flush is in flight at a time; the batches that queue meanwhile go together in the
next one, as one pipeline, and each gets its own results back in order. With one call at a time
nothing changes (its flush goes at once); under load the round trips per call fall well below
one. Errors stay per command (``raise_on_error=False``); a failed round trip fails every batch
in it, which each call's guard then handles as its plugin is configured.
"""

from __future__ import annotations

import asyncio
from typing import Any


class CoalescingRedis:
    """Wraps the shared ``redis.asyncio.Redis`` (see the module docstring)."""

    def __init__(self, redis: Any, timeout: float) -> None:
        self._redis = redis
        #: A shared round trip is abandoned after this long, so a hung connection cannot hold
        #: every later batch behind it.
        self._timeout = timeout
        self._queued: list[tuple[list[tuple[str, tuple[Any, ...], dict[str, Any]]], asyncio.Future[list[Any]]]] = []
        self._flushing = False

    def pipeline(self, transaction: bool = False) -> _RecordedPipeline:
        if transaction:
            raise ValueError("a coalesced pipeline is never a transaction")
        return _RecordedPipeline(self)

    def __getattr__(self, name: str) -> Any:  # anything else goes to the client itself
        return getattr(self._redis, name)

    async def _execute(self, commands: list[tuple[str, tuple[Any, ...], dict[str, Any]]]) -> list[Any]:
        future: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        self._queued.append((commands, future))
        if not self._flushing:
            self._flushing = True
            asyncio.get_running_loop().create_task(self._flush_all())
        # A caller that gives up (its timeout) must not cancel the others' round trip.
        return await asyncio.shield(future)

    async def _flush_all(self) -> None:
        try:
            while self._queued:
                queued, self._queued = self._queued, []
                await self._flush(queued)
        finally:
            self._flushing = False

    async def _flush(self, queued: list[tuple[list[tuple[str, tuple[Any, ...], dict[str, Any]]],
                                          asyncio.Future[list[Any]]]]) -> None:
        pipe = self._redis.pipeline(transaction=False)
        for commands, _ in queued:
            for name, args, kwargs in commands:
                getattr(pipe, name)(*args, **kwargs)
        try:
            async with asyncio.timeout(self._timeout):
                results = await pipe.execute(raise_on_error=False)
        except BaseException as error:  # every batch of this round trip hears the failure
            for _, future in queued:
                if not future.done():
                    future.set_exception(error if isinstance(error, Exception) else ConnectionError(str(error)))
                    future.exception()  # retrieved here: a caller that timed out never reads it
            if not isinstance(error, Exception):
                raise
            return
        start = 0
        for commands, future in queued:
            if not future.done():
                future.set_result(results[start:start + len(commands)])
            start += len(commands)


class _RecordedPipeline:
    """Records a batch's commands for :class:`CoalescingRedis`."""

    def __init__(self, owner: CoalescingRedis) -> None:
        self._owner = owner
        self._commands: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []

    def __getattr__(self, name: str) -> Any:
        def record(*args: Any, **kwargs: Any) -> _RecordedPipeline:
            self._commands.append((name, args, kwargs))
            return self

        return record

    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        if raise_on_error:
            raise ValueError("a coalesced pipeline returns errors in place (raise_on_error=False)")
        commands, self._commands = self._commands, []
        return await self._owner._execute(commands) if commands else []
