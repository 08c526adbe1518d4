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
* **Switching.** The driver runs on a thread of its own, and ``executemany`` releases and takes
  back the GIL around each row: a context switch with the serving thread per row, on a busy
  worker. Here a chunk of up to :data:`CHUNK` rows is one statement. Chunks are powers of two
  long, so the statements of a few shapes are prepared once and reused.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from functools import lru_cache
from itertools import chain
from typing import Any

import msgspec
from sqlalchemy.ext.asyncio import AsyncConnection

from junction.stores.metrics import rollups
from junction.stores.metrics.events import UsageEvent
from junction.stores.metrics.schema import EVENT_COLUMNS, usage_events

_astuple = msgspec.structs.astuple
_TIME = "%Y-%m-%d %H:%M:%S.%f"
#: Bound parameters one statement may hold (SQLite's default limit: 32766 since 3.32, 999 before).
_VARIABLES = 32766 if sqlite3.sqlite_version_info >= (3, 32, 0) else 999
#: Rows per statement, at most: a power of two whose rows' parameters stay under the limit.
CHUNK = 1 << min(8, (_VARIABLES // len(EVENT_COLUMNS)).bit_length() - 1)
#: Positions of the boolean columns (``fallback_used``, ``cache_hit``, ``stream``).
_BOOLEANS = frozenset(index for index, field in enumerate(msgspec.structs.fields(UsageEvent)) if field.type is bool)
_INSERT = f"INSERT INTO {usage_events.name} ({', '.join(EVENT_COLUMNS)}) VALUES "


def as_text(epoch: float) -> str:
    """A time as SQLAlchemy stores a ``DateTime`` on SQLite (naive UTC text)."""
    return datetime.fromtimestamp(epoch, UTC).strftime(_TIME)


def sqlite_times(batch: Sequence[UsageEvent]) -> list[str]:
    """The events' times as :func:`as_text` writes them, formatting each second once: a batch's
    events share their seconds, and ``strftime`` per event cost more than inserting it."""
    times = []
    second, prefix = None, ""
    for event in batch:
        epoch = event.time
        whole = int(epoch // 1)
        micros = round((epoch - whole) * 1e6)
        if micros >= 1_000_000:  # rounds up into the next second: format it whole
            times.append(as_text(epoch))
            continue
        if whole != second:
            second, prefix = whole, datetime.fromtimestamp(whole, UTC).strftime("%Y-%m-%d %H:%M:%S")
        times.append(f"{prefix}.{micros:06d}")
    return times


@lru_cache(maxsize=256)
def _statement(rows: int, literals: tuple[str | None, ...]) -> str:
    """``INSERT`` of ``rows`` rows; column ``i`` is ``literals[i]`` in every row, or bound when ``None``."""
    row = "(" + ", ".join("?" if literal is None else literal for literal in literals) + ")"
    return _INSERT + ", ".join([row] * rows)


def statements(batch: Sequence[UsageEvent]) -> Iterator[tuple[str, tuple[Any, ...]]]:
    """``batch`` as ``(statement, parameters)`` pairs of at most :data:`CHUNK` rows each."""
    times = sqlite_times(batch)
    start, total, size = 0, len(batch), CHUNK
    while start < total:
        while size > total - start:
            size //= 2
        # Column by column (straight from the events' tuples): what a chunk's rows share is seen
        # with one ``count`` per column.
        columns: list[Sequence[Any]] = list(zip(*map(_astuple, batch[start:start + size])))
        columns[0] = times[start:start + size]  # the time as text, not epoch seconds
        start += size
        literals: list[str | None] = []
        bound: list[Sequence[Any]] = []
        for index, column in enumerate(columns):
            first = column[0]
            if (first is None or first is True or first is False) and column.count(first) == size:
                literals.append("NULL" if first is None else "1" if first else "0")
            elif index in _BOOLEANS:
                literals.append(None)
                bound.append(list(map(int, column)))
            else:
                literals.append(None)
                bound.append(column)
        yield _statement(size, tuple(literals)), tuple(chain.from_iterable(zip(*bound)))


async def write(connection: AsyncConnection, batch: Sequence[UsageEvent], keeps_rollups: bool) -> None:
    """Insert ``batch`` (and add it to the rollups) on ``connection``, inside its transaction."""
    if keeps_rollups:
        await rollups.add(connection, batch, as_text)
    # The driver's own statements with plain tuples: SQLAlchemy's per-row processing cost more
    # than the insert itself.
    for statement, parameters in statements(batch):
        await connection.exec_driver_sql(statement, parameters)
