"""Ending the long-running tasks a component starts (listen, drain and flush loops)."""

from __future__ import annotations

import asyncio
from typing import Any


async def stop(task: asyncio.Task[Any]) -> None:
    """Cancel ``task`` and wait until it has ended. Its cancellation is the end expected, not an
    error; an error it ended with is raised. A cancel of the caller itself is not swallowed."""
    task.cancel()
    await asyncio.wait((task,))
    if not task.cancelled():
        task.result()


def end_if_cancel_dropped() -> None:
    """End the current task (raise ``CancelledError``) if it was cancelled and the cancel got lost.

    A loop calls this each turn. On Python 3.11, ``asyncio.wait_for`` returns normally when a cancel
    arrives just as the future it waits on completes (redis-py waits on its socket writes so), and
    a callback the loop runs may catch one: the loop would run on, and a :func:`stop` of it would
    wait forever. ``asyncio.timeout`` takes back the cancels it makes itself, so a request still
    counted is one that was dropped.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
