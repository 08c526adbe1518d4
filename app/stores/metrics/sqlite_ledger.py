"""The usage writer's SQLite side: a batch of events as a few multi-row ``INSERT`` statements,
plus the rollup upserts, in the batch's transaction.

A plain ``executemany`` of the 38-column rows cost the serving worker about three times what
the insert itself costs SQLite, for two reasons this module avoids:

* **Binding.** The ``sqlite3`` module binds an ``int``, ``float`` or ``str`` directly, but sends
  every other value (``None``, ``bool``) through its adaptation protocol, which on Python 3.11
  raises and clears an ``AttributeError`` per value: more than half the cost of a row with a
  dozen NULL columns. So a chunk's columns that hold NULL, or one boolean, in every row are
  written into the statement as literals instead of bound (a ledger's calls mostly agree on
  which columns are empty), and the other boolean columns are bound as 0 or 1.
* **Switching.** ``executemany`` releases and takes back the GIL around each row: a context
  switch with the serving thread per row, on a busy worker. Here a chunk of up to :data:`CHUNK`
  rows is one statement. Chunks are powers of two long, so the statements of a few shapes are
  prepared once and reused.
* **Binding, again.** SQLite takes its connection's mutex for every parameter bound; with ~30
  bound per row that was a fifth of the insert. A column that holds one value in every row of a
  chunk (most do: the principal, endpoint, model, prices of a busy key) is bound once for the
  chunk, ``INSERT … SELECT ?, column1, … FROM (VALUES …)``, and only the varying columns per
  row: 2.1 → 1.3 µs per event in process. Each set of constant columns is a statement shape of
  its own, prepared on first use (about 2 ms for 256 rows) and then cached.

And a ledger in a file is written by :class:`SqliteLedger`: a plain ``sqlite3`` connection on a
thread of its own, handed each batch's statements at once. Through SQLAlchemy and aiosqlite every
statement was several trips between the serving thread and the driver's (a cursor made, the
statement run, the cursor closed), and their bookkeeping cost the serving thread more than the
statements' parameters. The statements are prepared on the serving thread (a chunk at a time
costs it a fraction of a millisecond); SQLite runs them on the ledger's thread, mostly without
the GIL.

The ledger's thread runs as ``SCHED_IDLE`` (Linux): it shares the serving worker's core, and at
the default policy a batch (about 4 ms of SQLite at 1,500 events) took that core from the event
loop as it woke for a request, which then waited for the batch (``perf sched``: the event
loop's scheduling delay reached 4 ms once a second). Idle, a batch is written in the time the
worker leaves free, and any thread of the worker that wakes preempts it at once. A worker that
is never idle must still record every call, so a batch is written on a second thread, at the
default policy, when the writer falls behind (a whole batch more is waiting) or shuts down: an
unprivileged thread may enter ``SCHED_IDLE`` but not leave it. ``[server] batch_native_threads =
false`` keeps the ledger's thread at the default policy too.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from functools import lru_cache
from itertools import chain
from typing import TYPE_CHECKING, Any

import msgspec

from junction.native_threads import yield_the_core
from junction.stores.metrics import rollups
from junction.stores.metrics.events import UsageEvent
from junction.stores.metrics.schema import EVENT_COLUMNS, usage_events

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

_astuple = msgspec.structs.astuple
log = logging.getLogger("junction.metrics")
_TIME = "%Y-%m-%d %H:%M:%S.%f"
#: Bound parameters one statement may hold (SQLite's default limit: 32766 since 3.32, 999 before).
_VARIABLES = 32766 if sqlite3.sqlite_version_info >= (3, 32, 0) else 999
#: Rows per statement, at most: a power of two whose rows' parameters stay under the limit.
CHUNK = 1 << min(8, (_VARIABLES // len(EVENT_COLUMNS)).bit_length() - 1)
#: Positions of the boolean columns (``fallback_used``, ``cache_hit``, ``stream``).
_BOOLEANS = frozenset(index for index, field in enumerate(msgspec.structs.fields(UsageEvent)) if field.type is bool)
_INSERT = f"INSERT INTO {usage_events.name} ({', '.join(EVENT_COLUMNS)}) SELECT "


def as_text(epoch: float) -> str:
    """A time as SQLAlchemy stores a ``DateTime`` on SQLite (naive UTC text)."""
    return datetime.fromtimestamp(epoch, UTC).strftime(_TIME)


def sqlite_times(epochs: Iterable[float]) -> list[str]:
    """Times (epoch seconds) as :func:`as_text` writes them, formatting each second once: a
    batch's events share their seconds, and ``strftime`` per event cost more than inserting it.
    (Per event on the serving worker: one ``%`` into the second's own template.)"""
    times: list[str] = []
    append = times.append
    second, template = None, ""
    for epoch in epochs:
        whole = int(epoch)  # epoch seconds are positive: int() is floor
        micros = round((epoch - whole) * 1e6)  # as datetime.fromtimestamp rounds
        if micros >= 1_000_000:  # rounds up into the next second: format it whole
            append(as_text(epoch))
            continue
        if whole != second:
            second = whole
            template = datetime.fromtimestamp(whole, UTC).strftime("%Y-%m-%d %H:%M:%S") + ".%06d"
        append(template % micros)
    return times


#: Statement shapes kept prepared (by ``_statement``'s cache and the connection's alike).
_SHAPES = 256


@lru_cache(maxsize=_SHAPES)
def _statement(rows: int, shape: tuple[str | None, ...]) -> str:
    """``INSERT`` of ``rows`` rows: column ``i`` is ``shape[i]`` in every row (a literal, or ``?``:
    one parameter for the whole chunk), or is taken from the ``VALUES`` rows when ``None``.

    The chunk's constants are parameters, not literals, so a statement's text depends only on
    *which* columns are constant, and few shapes are prepared; their ``?`` come first in the text,
    so they are bound first."""
    varying = 0
    selected = []
    for part in shape:
        if part is None:
            varying += 1
            selected.append(f"column{varying}")
        else:
            selected.append(part)
    row = "(" + ", ".join(["?"] * varying) + ")"
    return _INSERT + ", ".join(selected) + " FROM (VALUES " + ", ".join([row] * rows) + ")"


def statements(batch: Sequence[UsageEvent],
               minutes: rollups.Sums | None = None) -> Iterator[tuple[str, tuple[Any, ...]]]:
    """``batch`` as ``(statement, parameters)`` pairs of at most :data:`CHUNK` rows each; with
    ``minutes``, each chunk is also added to those per-minute rollup sums (from the same columns)."""
    start, total, size = 0, len(batch), CHUNK
    while start < total:
        while size > total - start:
            size //= 2
        # Column by column (straight from the events' tuples): what a chunk's rows share is seen
        # with one ``count`` per column.
        columns: list[Sequence[Any]] = list(zip(*map(_astuple, batch[start:start + size])))
        constant = [column.count(column[0]) == size for column in columns]
        if minutes is not None:
            rollups.add_columns(minutes, columns, constant)
        # The time as text, not epoch seconds: per chunk, as the rest (a whole batch's at once
        # held the event loop for 2.3 ms at 5,000 events: a stall in every answer meanwhile).
        columns[0] = sqlite_times(columns[0])
        start += size
        shape: list[str | None] = [None]  # the time always varies: a chunk of ``size`` rows has a VALUES row each
        constants: list[Any] = []
        varying: list[Sequence[Any]] = [columns[0]]
        for index in range(1, len(columns)):
            column = columns[index]
            if constant[index]:
                first = column[0]
                if first is None or first is True or first is False:
                    shape.append("NULL" if first is None else "1" if first else "0")
                else:
                    shape.append("?")
                    constants.append(first)
            else:
                shape.append(None)
                varying.append(list(map(int, column)) if index in _BOOLEANS else column)
        yield _statement(size, tuple(shape)), (*constants, *chain.from_iterable(zip(*varying)))


async def write(connection: AsyncConnection, batch: Sequence[UsageEvent], keeps_rollups: bool) -> None:
    """Insert ``batch`` (and add it to the rollups) through SQLAlchemy, inside ``connection``'s
    transaction: a ledger that is not a file (``sqlite://`` in memory)."""
    minutes: rollups.Sums | None = {} if keeps_rollups else None
    for statement, parameters in statements(batch, minutes):
        await connection.exec_driver_sql(statement, parameters)
    if minutes:
        for statement, rows in rollups.sqlite_upserts(minutes, as_text):
            await connection.exec_driver_sql(statement, rows)  # type: ignore[arg-type]


#: The writer connection's page cache, in KiB (SQLite's default: 2,000). It only appends rows and
#: upserts a few rollup rows per batch, so its pages are re-read from the OS's cache, not its
#: own: at the default it held about 2 MB of every serving worker's memory once traffic began
#: (issue 17), for no measured gain in write time.
CACHE_KIB = 256


def _yield_the_core() -> None:
    """Runs first on the ledger's thread: ``SCHED_IDLE`` where Linux has it (see the module docstring)."""
    yield_the_core("the usage ledger's thread")


class SqliteLedger:
    """Writes batches to a ledger file on a thread and connection of its own (see the module's
    docstring); one batch at a time, each in one transaction."""

    def __init__(self, path: str, idle: bool = True) -> None:
        self._path = path
        self._idle = idle
        #: ``idle``: the thread yields the core (see the module docstring); off, the default policy.
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="junction-ledger",
                                          initializer=_yield_the_core if idle else None)
        #: The default-policy thread of urgent batches, made when the first one comes.
        self._urgent: ThreadPoolExecutor | None = None
        self._connection: sqlite3.Connection | None = None

    @classmethod
    def of(cls, engine: AsyncEngine, idle: bool = True) -> SqliteLedger | None:
        """The writer of ``engine``'s ledger when it is a SQLite file, else ``None``."""
        database = engine.url.database
        if engine.dialect.name != "sqlite" or not database or database == ":memory:" or database.startswith("file:"):
            return None
        return cls(database, idle)

    async def write(self, batch: Sequence[UsageEvent], keeps_rollups: bool, urgent: bool = False) -> None:
        """Write ``batch``; ``urgent`` (the writer is behind, or closing): at the default scheduling
        policy, not in the worker's idle time only."""
        minutes: rollups.Sums | None = {} if keeps_rollups else None
        inserts = []
        for chunk in statements(batch, minutes):  # a chunk at a time, the event loop's other work in between
            inserts.append(chunk)
            await asyncio.sleep(0)
        upserts = rollups.sqlite_upserts(minutes, as_text) if minutes else []
        thread = self._thread
        if urgent and self._idle:
            if self._urgent is None:
                self._urgent = ThreadPoolExecutor(max_workers=1, thread_name_prefix="junction-ledger-urgent")
            thread = self._urgent
        # One batch at a time (the writer's one slot for SQLite): the two threads never use the connection at once.
        await asyncio.get_running_loop().run_in_executor(thread, self._write, upserts, inserts)

    def _write(self, upserts: list[tuple[str, list[tuple[Any, ...]]]], inserts: list[tuple[str, tuple[Any, ...]]]) -> None:
        connection = self._connection
        if connection is None:
            # Autocommit mode: the transaction is the explicit one below. As the store's own
            # connections (store.tuned): write-ahead log, no fsync per commit.
            connection = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False,
                                         cached_statements=_SHAPES)
            connection.execute("PRAGMA journal_mode = WAL")
            connection.execute("PRAGMA synchronous = NORMAL")
            connection.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
            self._connection = connection
        connection.execute("BEGIN IMMEDIATE")
        try:
            for statement, rows in upserts:
                connection.executemany(statement, rows)
            for statement, parameters in inserts:
                connection.execute(statement, parameters)
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")

    def close(self) -> None:
        """Close the connection (after the batch in hand, if any) and the thread."""
        self._thread.submit(self._close).result()
        self._thread.shutdown()
        if self._urgent is not None:
            self._urgent.shutdown()

    def _close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None
