"""Granian's native threads in a worker, scheduled so that they stop preempting its Python thread.

A worker is one Python thread (the event loop, which holds the GIL while it works) and the
native threads of Granian's Rust runtime (socket I/O, and the threads that hand requests and
answers to Python). Sharing a core, as they do in a worker per core or pinned to one, each of
those threads preempted the Python thread whenever it woke (a request came in, an answer was to
be written): about three context switches a request, each costing the Python thread its CPU
caches, and a native thread that then wanted the GIL waited for the thread it had just
preempted. As ``SCHED_BATCH`` (Linux's policy for threads that need not run the moment they
wake) a woken native thread runs when the Python thread waits for I/O or its time slice ends:
3.1–3.7 → 0.5–1.0 context switches per request, and with ``bench/compare.py`` (one worker
pinned to a core, the defaults) 170 → 126 µs of CPU per request, +30% RPS, c=1 p50 −9%; the
price is the c=1 p99 (+10%: a thread that wakes during background work waits for it).

Under saturation the tail grows instead (``peers.sh``, 32 connections: p99 11 → 18–19 ms, p50
5.1 → 3.6–3.7 ms).

The runtime starts its threads after the ASGI start-up, and may start more later, so they are
looked up shortly after start-up and again every :data:`RESCAN_SECONDS`. "Native" means every
thread of the process that Python's ``threading`` does not know: Granian's, and any a native
library starts (an upstream client's own runtime, say), which wake for I/O the same way. The
Python thread and the threads Python code starts (database drivers' threads) are left as they
are; the embedded ledger's thread sets its own (``SCHED_IDLE``, see
:mod:`junction.stores.metrics.sqlite_ledger`). ``[server] batch_native_threads = false`` turns
this off; it does nothing off Linux.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading

from junction.tasks import stop

log = logging.getLogger("junction.native_threads")

#: Seconds after start-up before the first look (the runtime's threads start once it is over).
FIRST_LOOK_SECONDS = 0.5
#: Seconds between two looks for threads started since.
RESCAN_SECONDS = 30.0
_TASKS = "/proc/self/task"


def yield_the_core(what: str) -> None:
    """Put the calling thread, and the threads it starts from then on, under ``SCHED_IDLE`` where
    Linux has it: it runs only in the time the other threads of its core leave free, and any of
    them that wakes preempts it at once (an unprivileged thread may enter ``SCHED_IDLE`` but not
    leave it). ``what`` names it in the log line said when a sandbox forbids it."""
    if not hasattr(os, "SCHED_IDLE"):
        return
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except OSError as error:  # a sandbox may forbid it: the work runs at the default policy
        log.info("%s keeps the default scheduling policy: %s", what, error)


def batch_native_threads() -> int:
    """Move this process's threads that Python did not start to ``SCHED_BATCH``; returns how
    many moved (0 off Linux, or when there are none left to move)."""
    if not hasattr(os, "SCHED_BATCH") or not os.path.isdir(_TASKS):
        return 0
    python = {thread.native_id for thread in threading.enumerate()}
    moved = 0
    for entry in os.listdir(_TASKS):
        tid = int(entry)
        if tid in python:
            continue
        try:
            if os.sched_getscheduler(tid) == os.SCHED_OTHER:
                os.sched_setscheduler(tid, os.SCHED_BATCH, os.sched_param(0))
                moved += 1
        except ProcessLookupError:
            continue  # the thread ended meanwhile
    return moved


class NativeThreadPolicy:
    """Keeps the worker's native threads ``SCHED_BATCH`` (see the module docstring): ``start``
    and ``close`` are the app's start-up and shutdown hooks."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self.enabled and hasattr(os, "SCHED_BATCH"):
            self._task = asyncio.create_task(self._keep(), name="junction-native-threads")

    async def close(self) -> None:
        if self._task is not None:
            await stop(self._task)
            self._task = None

    async def _keep(self) -> None:
        delay = FIRST_LOOK_SECONDS
        while True:
            await asyncio.sleep(delay)
            delay = RESCAN_SECONDS
            try:
                moved = batch_native_threads()
            except PermissionError as error:  # a sandbox that forbids it: say so once, stop trying
                log.info("native threads keep their scheduling policy: %s", error)
                return
            if moved:
                log.debug("%d native thread(s) moved to SCHED_BATCH", moved)
