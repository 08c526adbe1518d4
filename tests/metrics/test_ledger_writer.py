"""The usage writer against the real PostgreSQL: batches by size and by time, flushes what is
buffered on close, survives the database going down (retry with backoff) and, past its bound,
drops and counts (with a log line) instead of queueing without limit."""

from __future__ import annotations

import asyncio
import logging
import time
from urllib.parse import urlsplit

import msgspec
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from junction.settings import settings_from_mapping
from junction.stores.metrics import migrate
from junction.stores.metrics.settings import MetricsSettings
from junction.stores.metrics.writer import UsageWriter
from tests.metrics.seed import event
from tests.metrics.tcp_proxy import TcpProxy


def events(count: int) -> list:
    now = time.time()
    return [event("org-w", "kw", "openai/gpt-4o", now, 200, (10, 5), 0.0001, 12.0) for _ in range(count)]


async def count_rows(engine, table: str = "usage_events") -> int:
    async with engine.connect() as connection:
        return (await connection.execute(sa.text(f"SELECT count(*) FROM {table}"))).scalar_one()


async def wait_until(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_batches_by_size_then_by_time_and_flushes_on_close(postgres_backend):
    settings = msgspec.structs.replace(postgres_backend.settings.metrics, batch_size=100, flush_seconds=30.0)
    writer = UsageWriter(postgres_backend.engine, settings)
    await writer.start()
    for item in events(250):
        assert writer.record(item)
    # Two full batches go at once; the last 50 wait for the 30 s timer...
    await wait_until(lambda: _is(writer.written == 200))
    await asyncio.sleep(0.2)
    assert writer.written == 200 and writer.pending == 50
    # ...or for shutdown, which writes everything accepted.
    await writer.close()
    assert writer.written == 250 and writer.pending == 0
    assert await count_rows(postgres_backend.engine) == 250
    async with postgres_backend.engine.connect() as connection:
        rollup = (await connection.execute(sa.text(
            "SELECT sum(requests), sum(input_tokens), sum(cost_usd) FROM usage_rollup_minute"))).one()
    assert rollup[0] == 250 and rollup[1] == 2500 and rollup[2] == pytest.approx(0.025)
    assert not writer.record(events(1)[0])  # closed: refused, and counted
    assert writer.dropped == 1


async def test_a_trickle_is_flushed_after_flush_seconds(postgres_backend):
    settings = msgspec.structs.replace(postgres_backend.settings.metrics, batch_size=1000, flush_seconds=0.1)
    writer = UsageWriter(postgres_backend.engine, settings)
    await writer.start()
    try:
        for item in events(3):
            writer.record(item)
        await wait_until(lambda: _is(writer.written == 3), timeout=3)
    finally:
        await writer.close()


async def test_database_down_retries_then_drops_past_the_bound(postgres_backend, caplog):
    target = urlsplit(postgres_backend.url.replace("postgresql+asyncpg", "http"))
    proxy = TcpProxy(target.hostname, target.port)
    await proxy.up()
    url = postgres_backend.url.replace(f":{target.port}/", f":{proxy.port}/")
    engine = create_async_engine(url, pool_pre_ping=True)
    settings = msgspec.structs.replace(postgres_backend.settings.metrics, batch_size=10, flush_seconds=0.05,
                                       buffer_size=50, max_backoff_seconds=0.2, shutdown_seconds=5)
    writer = UsageWriter(engine, settings)
    await writer.start()
    try:
        writer.record(events(1)[0])
        await wait_until(lambda: _is(writer.written == 1))
        await proxy.down()
        caplog.set_level(logging.WARNING, logger="junction.metrics")
        accepted = [writer.record(item) for item in events(80)]
        assert accepted.count(True) == 50 and accepted.count(False) == 30
        assert writer.dropped == 30
        await wait_until(lambda: _is(writer.failed_flushes >= 2))
        assert writer.written == 1  # nothing lost while down: still buffered
        assert any("buffer full" in record.getMessage() and "dropped 1 usage event" in record.getMessage()
                   for record in caplog.records)  # the first drop is reported at once (then every 10 s)
        assert any("retrying in" in record.getMessage() for record in caplog.records)
        await proxy.up()
        await wait_until(lambda: _is(writer.written == 51))
    finally:
        await writer.close()
        await proxy.down()
        await engine.dispose()
    assert await count_rows(postgres_backend.engine) == 51


async def test_shutdown_while_the_database_is_down_reports_the_loss(postgres_backend, caplog):
    engine = create_async_engine("postgresql+asyncpg://postgres@127.0.0.1:1/nowhere")
    settings = msgspec.structs.replace(postgres_backend.settings.metrics, max_backoff_seconds=0.1,
                                       shutdown_seconds=0.5)
    writer = UsageWriter(engine, settings)
    await writer.start()
    for item in events(7):
        writer.record(item)
    caplog.set_level(logging.ERROR, logger="junction.metrics")
    await writer.close()
    await engine.dispose()
    assert any("7 usage event(s) could not be written" in record.getMessage() for record in caplog.records)


async def _is(value: bool) -> bool:
    return value



async def test_rows_the_database_refuses_are_dropped_not_retried_forever(postgres_backend, caplog):
    settings = msgspec.structs.replace(postgres_backend.settings.metrics, batch_size=1, flush_seconds=0.01,
                                       max_backoff_seconds=0.01)
    writer = UsageWriter(postgres_backend.engine, settings)
    await writer.start()
    caplog.set_level(logging.ERROR, logger="junction.metrics")
    try:
        poison = msgspec.structs.replace(events(1)[0], model="m" * 300)  # longer than the column
        writer.record(poison)
        for item in events(3):
            writer.record(item)
        await wait_until(lambda: _is(writer.written == 3))
    finally:
        await writer.close()
    assert writer.dropped == 1
    assert any("refused 1 event(s) 5 times" in record.getMessage() for record in caplog.records)


async def test_record_many_keeps_the_bound_and_counts_what_it_drops(tmp_path, caplog):
    """The metrics stage hands a drain's rows over at once: as many as the buffer has room for
    are queued and written, the rest dropped and counted, and a closed writer takes none."""
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path}/ledger.db")
    settings = msgspec.structs.replace(MetricsSettings(), batch_size=10, flush_seconds=0.05, buffer_size=25)
    await migrate.upgrade(engine, settings_from_mapping({}))
    writer = UsageWriter(engine, settings)
    caplog.set_level(logging.WARNING, logger="junction.metrics")
    # Not started yet: nothing is taken out, so the buffer fills.
    assert writer.record_many(events(20)) == 20
    assert writer.record_many(events(8)) == 5 and writer.dropped == 3
    assert writer.record_many(events(4)) == 0 and writer.dropped == 7
    assert any("buffer full" in record.getMessage() and "dropped 3 usage event" in record.getMessage()
               for record in caplog.records)
    await writer.start()
    await wait_until(lambda: _is(writer.written == 25))
    assert writer.record_many(events(3)) == 3  # room again; a trickle is flushed by time
    await wait_until(lambda: _is(writer.written == 28))
    await writer.close()
    assert writer.record_many(events(2)) == 0 and writer.dropped == 9
    async with engine.connect() as connection:
        assert (await connection.exec_driver_sql("SELECT count(*) FROM usage_events")).scalar() == 28
    await engine.dispose()
