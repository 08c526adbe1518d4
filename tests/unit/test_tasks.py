"""Stopping a component's long-running task (junction.tasks)."""

from __future__ import annotations

import asyncio

import pytest

from junction.tasks import end_if_cancel_dropped, stop


async def test_stop_ends_a_loop_and_returns_quietly() -> None:
    turns = 0

    async def loop() -> None:
        nonlocal turns
        while True:
            turns += 1
            await asyncio.sleep(0.01)

    task = asyncio.create_task(loop())
    await asyncio.sleep(0.05)
    await stop(task)
    assert task.cancelled() and turns > 0


async def test_stop_raises_what_the_task_failed_with() -> None:
    async def fails_on_cancel() -> None:
        try:
            await asyncio.sleep(30)
        finally:
            raise RuntimeError("flush failed")

    task = asyncio.create_task(fails_on_cancel())
    await asyncio.sleep(0)
    with pytest.raises(RuntimeError, match="flush failed"):
        await stop(task)


async def test_a_cancel_of_the_caller_is_not_swallowed() -> None:
    async def slow_to_end() -> None:
        try:
            await asyncio.sleep(30)
        finally:
            await asyncio.shield(asyncio.sleep(0.3))  # a last flush

    stopped = asyncio.create_task(slow_to_end())
    await asyncio.sleep(0)
    caller = asyncio.create_task(stop(stopped))
    await asyncio.sleep(0.05)
    caller.cancel()  # a shutdown that ran out of time
    await asyncio.wait((caller,))
    assert caller.cancelled()
    await asyncio.wait((stopped,))


async def test_a_loop_ends_when_a_callback_swallowed_its_cancel() -> None:
    async def swallows(seconds: float) -> None:
        try:
            await asyncio.sleep(seconds)
        except asyncio.CancelledError:
            pass  # as asyncio.wait_for does on 3.11 when its future completes at the same time

    turns = 0

    async def loop() -> None:
        nonlocal turns
        while True:
            end_if_cancel_dropped()
            turns += 1
            await swallows(30)

    task = asyncio.create_task(loop())
    await asyncio.sleep(0.05)
    async with asyncio.timeout(2.0):
        await stop(task)
    assert task.cancelled() and turns == 1


async def test_a_loop_whose_own_timeouts_expire_runs_on() -> None:
    """asyncio.timeout takes back its own cancels: a timeout is not mistaken for a stop."""
    turns = 0

    async def loop() -> None:
        nonlocal turns
        while turns < 3:
            end_if_cancel_dropped()
            turns += 1
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.01):
                    await asyncio.sleep(30)

    await asyncio.wait_for(loop(), timeout=2.0)
    assert turns == 3
