"""A pytest plugin: a hung test fails alone, after ``[tool.pytest.ini_options] timeout`` seconds,
and says where it hung.

pytest-timeout's own report is each thread's stack. The suite's async tests share one event loop
(``asyncio_default_test_loop_scope = "session"``), so a test stuck on an ``await`` shows only the
loop waiting in ``select``; this timer prints every pending asyncio task's stack first, which
names the await that never returned (and any task an earlier test left running).
"""

from __future__ import annotations

import asyncio
import signal
import threading
import traceback
from typing import Any

import pytest
import pytest_timeout


def _awaited_frames(task: asyncio.Task[Any]) -> list[Any]:
    """The frames of ``task``'s chain of awaits, outermost first (``Task.get_stack`` gives only the
    outermost coroutine of a suspended task)."""
    frames, awaitable = [], task.get_coro()
    while awaitable is not None:
        frame = getattr(awaitable, "cr_frame", None) or getattr(awaitable, "gi_frame", None)
        if frame is not None:
            frames.append(frame)
        awaitable = getattr(awaitable, "cr_await", None) or getattr(awaitable, "gi_yieldfrom", None)
    return frames


def _print_pending_tasks(terminal: Any) -> None:
    try:
        loop = asyncio.get_running_loop()  # the signal interrupts the loop's own thread
    except RuntimeError:
        return  # a sync test: pytest-timeout's thread stacks say it all
    tasks = [task for task in asyncio.all_tasks(loop) if not task.done()]
    terminal.sep("+", title=f"{len(tasks)} pending asyncio tasks")
    for task in tasks:
        terminal.sep("~", title=task.get_name())
        for frame in _awaited_frames(task):
            terminal.write("".join(traceback.format_stack(frame, limit=1)))


@pytest.hookimpl(tryfirst=True)
def pytest_timeout_set_timer(item: pytest.Item, settings: Any) -> bool | None:
    """Arm the timeout of ``item``: pytest-timeout's ``signal`` method, asyncio tasks printed first.
    Returns None (pytest-timeout arms its own) where that method cannot run."""
    if settings.method != "signal" or threading.current_thread() is not threading.main_thread():
        return None

    def on_timeout(signum: int, frame: Any) -> None:
        _print_pending_tasks(item.config.get_terminal_writer())
        pytest_timeout.timeout_sigalrm(item, settings)  # thread stacks, then fails the test

    def cancel() -> None:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, signal.SIG_DFL)

    item.cancel_timeout = cancel  # what pytest-timeout's cancel hook calls
    signal.signal(signal.SIGALRM, on_timeout)
    signal.setitimer(signal.ITIMER_REAL, settings.timeout)
    return True
