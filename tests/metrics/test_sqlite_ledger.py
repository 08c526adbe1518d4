"""The embedded ledger's inserts: chunks of several rows per statement, with the columns that are
NULL (or one boolean) across a chunk written as literals and the other constant ones bound once.
Every column of every row must read back as recorded, whatever mix of empty, constant and varying
values the chunks hold."""

from __future__ import annotations

import asyncio
import os
import sqlite3

import msgspec
import pytest

from junction.settings import settings_from_mapping
from junction.stores.metrics.schema import EVENT_COLUMNS, HISTOGRAM_COLUMNS, latency_bucket
from junction.stores.metrics.sqlite_ledger import CHUNK, SqliteLedger, as_text
from junction.stores.metrics.store import SQLITE_PAGE_SIZE, MetricsStore
from junction.stores.metrics.writer import UsageWriter
from junction.stores.sql_engine import open_engine
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


async def test_rollups_equal_the_events_summed_in_sql(tmp_path):
    """The writer sums each chunk of events into the rollups: a chunk of one bucket, org, key and
    model at once, a mixed one (or one across a minute's end) event by event. Either way every
    rollup row equals its events summed by SQLite itself."""
    uniform = [msgspec.structs.replace(item, request_id=f"u-{index}", time=BASE + 45 + index * 0.1,
                                       latency_ms=5.0 + index % 9 * 40, latency_bucket=latency_bucket(5.0 + index % 9 * 40),
                                       status=502 if index % 17 == 0 else 200)
               for index, item in enumerate([event("org-u", "ku", "openai/gpt-4o", 0.0, 200, (3, 4), 0.002, 1.0)] * 600)]
    backend, _ = await open_backend("sqlite", tmp_path)
    try:
        writer = UsageWriter(backend.engine, backend.settings.metrics)
        await writer.write(varied(CHUNK + 45))
        await writer.write(uniform)  # three chunks of 256, 256, 64... rows; the second crosses 10:01:00
        await writer.close()
    finally:
        await close_backend(backend, None)
    dimensions = "org_id, key_id, bridge_id, provider, model"
    measures = ("requests, errors, cache_hits, priced_requests, input_tokens, output_tokens, cached_tokens, "
                "cache_write_tokens, reasoning_tokens, cost_usd, latency_ms_sum")
    database = sqlite3.connect(tmp_path / "metrics.db")
    try:
        rollup = database.execute(f"SELECT bucket, {dimensions}, {measures} FROM usage_rollup_minute "
                                  f"ORDER BY 1, 2, 3, 4, 5, 6").fetchall()
        wanted = database.execute(
            "SELECT substr(time, 1, 17) || '00.000000', coalesce(org_id, ''), coalesce(key_id, ''), "
            "coalesce(bridge_id, ''), coalesce(provider, ''), coalesce(model, ''), count(*), "
            "sum(status >= 400), sum(cache_hit), count(cost_usd), total(input_tokens), total(output_tokens), "
            "total(cached_tokens), total(cache_write_tokens), total(reasoning_tokens), total(cost_usd), "
            "total(latency_ms) FROM usage_events GROUP BY 1, 2, 3, 4, 5, 6 ORDER BY 1, 2, 3, 4, 5, 6").fetchall()
        histogram = database.execute(f"SELECT {', '.join(HISTOGRAM_COLUMNS)} FROM usage_rollup_minute "
                                     f"ORDER BY bucket, {dimensions}").fetchall()
        counted = database.execute(
            f"SELECT substr(time, 1, 17), {dimensions}, latency_bucket, count(*) FROM usage_events "
            f"GROUP BY 1, 2, 3, 4, 5, 6, 7").fetchall()
    finally:
        database.close()
    assert len(rollup) == len(wanted) > 3
    for row, want in zip(rollup, wanted):
        assert row[:10] == want[:10]  # bucket, dimensions and counts: exact
        assert row[10:] == pytest.approx(want[10:])
    assert sum(map(sum, histogram)) == sum(count for *_, count in counted) == len(varied(CHUNK + 45)) + len(uniform)
    assert sorted(filter(None, (value for row in histogram for value in row))) == sorted(
        _per_bucket(counted))


def _per_bucket(counted: list) -> list[int]:
    """The histogram's non-zero cells, from (minute, dimensions..., latency bucket, count) rows."""
    cells: dict = {}
    for *key, latency, count in counted:
        cell = (tuple(value or "" for value in key), latency)
        cells[cell] = cells.get(cell, 0) + count
    return list(cells.values())


class _Engines:
    """The one engine of ``url``, as the Runtime's SqlEngines hands it to the store."""

    def __init__(self, url: str) -> None:
        self.opened = open_engine(url)

    def engine(self, _store: str):  # type: ignore[no-untyped-def]
        return self.opened


async def _store_round_trip(path) -> int:
    """Start a metrics store on the ledger file ``path``, write a few events, close it; the
    file's page size."""
    settings = settings_from_mapping({"stores": {"metrics": f"sqlite+aiosqlite:///{path}"}})
    engines = _Engines(settings.stores.metrics)
    store = MetricsStore(settings, engines)  # type: ignore[arg-type]
    await store.start()
    assert store.record_many(varied(10)) == 10
    await store.close()
    await engines.opened.dispose()
    database = sqlite3.connect(path)
    try:
        assert database.execute("SELECT count(*) FROM usage_events").fetchone() == (10,)
        return database.execute("PRAGMA page_size").fetchone()[0]
    finally:
        database.close()


async def test_a_new_ledger_file_gets_large_pages_an_old_one_keeps_its_own(tmp_path):
    assert await _store_round_trip(tmp_path / "new.db") == SQLITE_PAGE_SIZE == 16384
    old = sqlite3.connect(tmp_path / "old.db")
    old.execute("CREATE TABLE made_before (id INTEGER)")  # a file of SQLite's default 4096-byte pages
    old.close()
    assert await _store_round_trip(tmp_path / "old.db") == 4096


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


def test_a_batch_is_prepared_a_chunk_at_a_time(monkeypatch):
    # The serving worker's event loop prepares a batch between requests, one chunk per turn: the
    # times of a whole batch were formatted before its first chunk (2.3 ms at 5,000 events, one
    # stall in every answer in flight).
    from junction.stores.metrics import sqlite_ledger

    formatted: list[int] = []
    real = sqlite_ledger.sqlite_times

    def counting(epochs):  # type: ignore[no-untyped-def]
        epochs = list(epochs)
        formatted.append(len(epochs))
        return real(epochs)

    monkeypatch.setattr(sqlite_ledger, "sqlite_times", counting)
    batch = varied(4 * CHUNK + 3)
    chunks = sqlite_ledger.statements(batch)
    next(chunks)
    assert formatted == [CHUNK]  # the first chunk's times, no more
    rest = list(chunks)
    assert sum(formatted) == len(batch) and max(formatted) <= CHUNK and len(rest) + 1 == len(formatted)


@pytest.mark.skipif(not hasattr(os, "SCHED_IDLE"), reason="SCHED_IDLE is Linux's")
async def test_batches_are_written_in_idle_time_unless_the_writer_falls_behind(tmp_path):
    """The ledger's thread shares the serving worker's core: it runs as SCHED_IDLE, so a batch
    never keeps the event loop from a request. A writer that falls behind (a whole batch more
    waiting) writes at the default policy, on a thread of its own, so a worker that is never idle
    still records every call."""
    backend, _ = await open_backend("sqlite", tmp_path)
    settings = msgspec.structs.replace(backend.settings.metrics, batch_size=50, flush_seconds=0.05)
    writer = UsageWriter(backend.engine, settings)
    await writer.start()
    ledger = writer._sqlite
    assert ledger is not None
    try:
        writer.record_many(varied(10))  # a trickle: written in idle time
        await _written(writer, 10)
        assert ledger._thread.submit(os.sched_getscheduler, 0).result() == os.SCHED_IDLE
        assert ledger._urgent is None
        writer.record_many(varied(500))  # ten batches at once: behind
        await _written(writer, 510)
        assert ledger._urgent is not None
        assert ledger._urgent.submit(os.sched_getscheduler, 0).result() == os.SCHED_OTHER
    finally:
        await writer.close()
        await close_backend(backend, None)
    database = sqlite3.connect(tmp_path / "metrics.db")
    try:
        assert database.execute("SELECT count(*) FROM usage_events").fetchone() == (510,)
    finally:
        database.close()



@pytest.mark.skipif(not hasattr(os, "SCHED_IDLE"), reason="SCHED_IDLE is Linux's")
async def test_turned_off_the_ledger_thread_keeps_the_default_policy(tmp_path):
    # [server] batch_native_threads = false: every thread of the worker at the default policy.
    backend, _ = await open_backend("sqlite", tmp_path)
    try:
        writer = UsageWriter(backend.engine, backend.settings.metrics, idle_thread=False)
        await writer.write(varied(5))
        assert writer._sqlite is not None
        assert writer._sqlite._thread.submit(os.sched_getscheduler, 0).result() == os.SCHED_OTHER
        await writer.close()
    finally:
        await close_backend(backend, None)

async def _written(writer: UsageWriter, count: int) -> None:
    for _ in range(200):
        if writer.written >= count:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{writer.written} of {count} events written")
