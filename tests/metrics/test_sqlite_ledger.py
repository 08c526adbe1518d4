"""The embedded ledger's inserts: chunks of several rows per statement, with the columns that are
NULL (or one boolean) across a chunk written as literals and the other constant ones bound once.
Every column of every row must read back as recorded, whatever mix of empty, constant and varying
values the chunks hold."""

from __future__ import annotations

import sqlite3

import msgspec

from junction.stores.metrics.schema import EVENT_COLUMNS
from junction.stores.metrics.sqlite_ledger import CHUNK, SqliteLedger, as_text
from junction.stores.metrics.writer import UsageWriter
from tests.metrics.conftest import close_backend, open_backend
from tests.metrics.seed import event

BASE = 1_767_607_200.0  # 2026-01-05 10:00:00 UTC


def varied(count: int) -> list:
    """Events whose empty columns, booleans and types change from row to row (the first ones)
    and then stay the same (the last ones)."""
    made = []
    for index in range(count):
        settled = index >= count - 40
        kind = 0 if settled else index % 5
        item = event("org-s" if kind != 1 else None, f"k{index % 3}", None if kind == 2 else "openai/gpt-4o",
                     BASE + index * 0.25, 200 if kind != 3 else 502, None if kind in (2, 3) else (index, 7),
                     None if kind in (1, 2, 3) else 0.001 * index, 10.0 + index, cache_hit=kind == 4,
                     code="boom" if kind == 3 else None)
        made.append(msgspec.structs.replace(item, request_id=f"req-{index}", stream=kind == 1,
                                            fallback_used=kind == 4, ttft_ms=1.5 if kind == 1 else None,
                                            bridge_version=index if kind == 4 else None))
    return made


async def test_every_column_reads_back_as_recorded(tmp_path):
    backend, _ = await open_backend("sqlite", tmp_path)
    try:
        writer = UsageWriter(backend.engine, backend.settings.metrics)
        batch = varied(CHUNK + 45)  # a full chunk, then chunks of 32, 8, 4 and 1 rows
        await writer.write(batch)
        await writer.close()
    finally:
        await close_backend(backend, None)
    database = sqlite3.connect(tmp_path / "metrics.db")
    try:
        stored = database.execute(f"SELECT {', '.join(EVENT_COLUMNS)} FROM usage_events ORDER BY time").fetchall()
        requests, errors, priced = database.execute(
            "SELECT sum(requests), sum(errors), sum(priced_requests) FROM usage_rollup_minute").fetchone()
    finally:
        database.close()
    expected = [(as_text(item.time), *msgspec.structs.astuple(item)[1:]) for item in batch]
    assert len(stored) == len(expected)
    for row, want in zip(stored, expected):
        assert row == want  # booleans come back as 0 / 1, which compare equal
        assert [type(value) for value in row] == [int if type(value) is bool else type(value) for value in want]
    assert (requests, errors, priced) == (len(batch), sum(item.status >= 400 for item in batch),
                                          sum(item.cost_usd is not None for item in batch))


async def test_the_writer_connection_keeps_a_small_page_cache(tmp_path):
    """The ledger's writer thread is in every serving worker: its SQLite page cache is what it
    keeps of that worker's memory once requests are recorded (issue 17)."""
    backend, _ = await open_backend("sqlite", tmp_path)
    try:
        ledger = SqliteLedger(str(tmp_path / "metrics.db"))
        await ledger.write(varied(10), keeps_rollups=True)
        assert ledger._connection is not None
        (cache,) = ledger._connection.execute("PRAGMA cache_size").fetchone()
        assert -256 <= cache < 0  # at most 256 KiB (SQLite's default is 2,000 KiB)
        ledger.close()
    finally:
        await close_backend(backend, None)
