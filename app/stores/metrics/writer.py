"""The usage writer: a bounded in-process buffer flushed to the ledger in batches.

``record`` is all a call pays: an append to a deque (or, when the buffer is full, a counted
drop). A background task takes a batch when ``batch_size`` events wait or ``flush_seconds``
after the first one arrived. On PostgreSQL a batch is one binary ``COPY`` into ``usage_events``
and nothing else: the database keeps the rollups (a trigger on the plain branch, continuous
aggregates on TimescaleDB), so the writer's only per-event work is handing the row to asyncpg's
encoder. SQLite gets a multi-row insert plus the rollup upserts summed here, in one transaction.
On PostgreSQL several batches are in flight at once (on as many connections), so the database
works on some while the next is encoded; SQLite, one writer at a time, takes one. A batch that
failed is tried again first, with doubling backoff while the database is down; events arriving
meanwhile fill the buffer up to its bound (batches in flight or waiting count) and are dropped
(counted, logged) past it. ``close`` flushes what is left, retrying for up to
``shutdown_seconds``; whatever still cannot be written is logged with its count.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import msgspec
from sqlalchemy.exc import DataError, IntegrityError, ProgrammingError

from junction.stores.metrics import sqlite_ledger
from junction.stores.metrics.events import UsageEvent
from junction.stores.metrics.schema import EVENT_COLUMNS, usage_events
from junction.stores.metrics.settings import MetricsSettings
from junction.tasks import end_if_cancel_dropped, stop

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

log = logging.getLogger("junction.metrics")

_astuple = msgspec.structs.astuple
_DROP_LOG_SECONDS = 10.0


#: Consecutive refusals (not connection failures) of one batch before it is dropped.
_REJECTED_ATTEMPTS = 5
#: Batches written at once, by dialect (SQLite has one writer at a time). On PostgreSQL the
#: database's share of a batch (indexes, rollup trigger) is several times the writer's, so three
#: keep both cores of a small host busy.
_IN_FLIGHT = {"postgresql": 3}


def _refused_rows(error: Exception) -> bool:
    """Whether the database answered and refused the rows (bad data), rather than being
    unreachable (retry)."""
    if isinstance(error, (DataError, IntegrityError, ProgrammingError)):
        return True
    # COPY raises the driver's own errors (asyncpg's DataError family).
    return any(cls.__name__ in ("DataError", "IntegrityConstraintViolationError") for cls in type(error).__mro__)


def as_datetime(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


class UsageWriter:
    def __init__(self, engine: AsyncEngine, settings: MetricsSettings, *, keeps_rollups: bool = True,
                 prepare: Callable[[], Awaitable[None]] | None = None, idle_thread: bool = True) -> None:
        self._engine = engine
        #: A ledger in a SQLite file is written on a connection and thread of its own (``SCHED_IDLE``
        #: unless ``idle_thread`` is false: ``[server] batch_native_threads``).
        self._sqlite = sqlite_ledger.SqliteLedger.of(engine, idle_thread)
        #: Run before each write until it succeeds once (the store's schema check and detection).
        self._prepare = prepare
        self._settings = settings
        #: SQLite only: sum and upsert the rollups with each batch (PostgreSQL keeps its own).
        self.keeps_rollups = keeps_rollups
        self._buffer: deque[UsageEvent] = deque()
        #: Batches that failed, with their count of refusals, tried again before the buffer.
        self._retry: deque[tuple[list[UsageEvent], int]] = deque()
        #: Events taken out of the buffer and not yet written (in flight or waiting to retry).
        self._held = 0
        self._backoff = 0.0
        self._bound = settings.buffer_size
        self._batch = settings.batch_size
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        #: Totals since start, for logs, metrics and tests.
        self.written = 0
        self.dropped = 0
        self.failed_flushes = 0
        self._dropped_logged = 0
        self._drop_logged_at = float("-inf")

    @property
    def pending(self) -> int:
        """Events accepted and not yet written."""
        return len(self._buffer) + self._held

    def record(self, event: UsageEvent) -> bool:
        """Queue ``event``; ``False`` when the buffer is full (or the writer closed) and it was
        dropped (counted)."""
        return self.record_many([event]) == 1

    def record_many(self, events: list[UsageEvent]) -> int:
        """Queue ``events`` in order while the buffer has room (the metrics stage hands over a
        drain's worth at a time); returns how many were accepted: the rest were dropped (counted,
        logged), as were all of them once the writer is closing."""
        buffer = self._buffer
        before = len(buffer)
        room = 0 if self._closing else self._bound - before - self._held
        accepted = events if len(events) <= room else events[:max(room, 0)]
        if accepted:
            buffer.extend(accepted)
            if before == 0 or before < self._batch <= len(buffer):
                self._wake.set()
        if len(accepted) < len(events):
            self._drop("writer closed" if self._closing else "buffer full", len(events) - len(accepted))
        return len(accepted)

    def _drop(self, why: str, count: int = 1) -> None:
        self.dropped += count
        now = time.monotonic()
        if now - self._drop_logged_at >= _DROP_LOG_SECONDS:
            log.warning("usage ledger: %s (%d events waiting; database slow or down?): dropped %d "
                        "usage event(s) since the last report, %d in total",
                        why, len(self._buffer), self.dropped - self._dropped_logged, self.dropped)
            self._dropped_logged, self._drop_logged_at = self.dropped, now

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="junction-usage-writer")

    async def close(self) -> None:
        """Stop accepting, flush everything buffered (retrying up to ``shutdown_seconds``)."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            done, _ = await asyncio.wait((self._task,), timeout=self._settings.shutdown_seconds)
            if done:
                self._task.result()
            else:
                await stop(self._task)  # what is left is reported below
            self._task = None
        if self._sqlite is not None:
            self._sqlite.close()
        if self.dropped > self._dropped_logged:
            log.warning("usage ledger: %d usage event(s) dropped in total (buffer full)", self.dropped)
        if self.pending:
            log.error("usage ledger: %d usage event(s) could not be written before shutdown and are lost "
                      "(database unreachable)", self.pending)

    async def _run(self) -> None:
        slots = asyncio.Semaphore(_IN_FLIGHT.get(self._engine.dialect.name, 1))
        flushes: set[asyncio.Task[None]] = set()
        try:
            while True:
                end_if_cancel_dropped()
                if not self._buffer and not self._retry:
                    if self._closing:
                        if not flushes:
                            return
                        await asyncio.wait(set(flushes))  # a failed one queues a retry
                        continue
                    self._wake.clear()
                    await self._wake.wait()  # an event, a batch to retry, or close
                    continue
                if not self._retry and len(self._buffer) < self._batch and not self._closing:
                    # Give a trickle of events time to become a batch (closing cuts it short).
                    self._wake.clear()
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(self._settings.flush_seconds):
                            await self._wake.wait()
                await slots.acquire()
                if self._retry:
                    batch, refusals = self._retry.popleft()
                elif self._buffer:
                    buffer = self._buffer
                    batch = [buffer.popleft() for _ in range(min(len(buffer), self._batch))]
                    refusals = 0
                    self._held += len(batch)
                else:
                    slots.release()
                    continue
                flush = asyncio.create_task(self._flush(batch, refusals, slots))
                flushes.add(flush)
                flush.add_done_callback(flushes.discard)
        finally:
            for flush in flushes:  # shutdown ran out of time: what they hold is reported lost
                flush.cancel()

    async def _flush(self, batch: list[UsageEvent], refusals: int, slots: asyncio.Semaphore) -> None:
        try:
            await self.write(batch)
        except Exception as error:  # the database is down or refused: keep the batch, retry
            self.failed_flushes += 1
            refusals = refusals + 1 if _refused_rows(error) else 0
            if refusals >= _REJECTED_ATTEMPTS:
                # The database answers but refuses these rows: retrying will not help, and
                # holding them would stop every later event. Drop them, counted and logged.
                log.error("usage ledger: the database refused %d event(s) %d times (%s); dropping them",
                          len(batch), refusals, str(error).splitlines()[0] if str(error) else type(error).__name__)
                self._held -= len(batch)
                self.dropped += len(batch)
            else:
                self._backoff = min(max(self._backoff * 2, 0.25), self._settings.max_backoff_seconds)
                log.warning("usage ledger: writing %d event(s) failed (%s: %s); retrying in %.2fs, %d waiting",
                            len(batch), type(error).__name__, str(error).splitlines()[0] if str(error) else "",
                            self._backoff, self.pending)
                await asyncio.sleep(self._backoff)  # holding the slot: it is not retried sooner
                self._retry.append((batch, refusals))
                self._wake.set()
        else:
            self._backoff = 0.0
            self._held -= len(batch)
            self.written += len(batch)
        finally:
            slots.release()

    async def write(self, batch: list[UsageEvent]) -> None:
        """Write ``batch`` (events and, where kept, rollups) in one transaction."""
        if self._prepare is not None:
            await self._prepare()
        if self._sqlite is not None:
            # Behind (a whole batch more waits) or closing: not in the worker's idle time only.
            urgent = self._closing or len(self._buffer) >= self._batch
            await self._sqlite.write(batch, self.keeps_rollups, urgent)
            return
        async with self._engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                # Opens the transaction COPY and the upserts join. Not waiting for the commit's
                # WAL flush: a crash of the database may lose the last fraction of a second of
                # events (never corrupt anything), as a crash of the gateway loses its buffer.
                await connection.exec_driver_sql("SET LOCAL synchronous_commit = off")
                driver = (await connection.get_raw_connection()).driver_connection
                # The rollups follow in the database (see the module docstring): only the rows.
                stamp, utc = datetime.fromtimestamp, UTC
                rows = [(stamp(event.time, utc), *_astuple(event)[1:]) for event in batch]
                await driver.copy_records_to_table(  # type: ignore[union-attr]
                    usage_events.name, records=rows, columns=EVENT_COLUMNS)
            else:
                await sqlite_ledger.write(connection, batch, self.keeps_rollups)
