"""Usage-writer throughput into PostgreSQL: events/s from ``record`` to committed rows.

    python bench/ledger_writer.py [--events 300000] [--url postgresql+asyncpg://postgres@127.0.0.1:5432]

Creates a scratch database on that server, migrates it (the TimescaleDB branch when the server
preloads the extension), records the events as fast as the loop allows (a full buffer drops, as
in production: the count is reported) and times until the writer committed them all; the
database is dropped afterwards. Events are built before the clock starts.

Besides events/s it reports the CPU time per event of this process and of the writer's
PostgreSQL backends (read from /proc: the server must run on this machine), which a busy shared
host inflates far less than the wall clock.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import secrets
import sys
import time
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from junction.settings import settings_from_mapping  # noqa: E402
from junction.stores.metrics import migrate, timescale  # noqa: E402
from junction.stores.metrics.events import UsageEvent  # noqa: E402
from junction.stores.metrics.schema import latency_bucket  # noqa: E402
from junction.stores.metrics.writer import UsageWriter  # noqa: E402

MODELS = [("openai", "gpt-4o"), ("openai", "gpt-4o-mini"), ("anthropic", "claude-sonnet-4-5"),
          ("anthropic", "claude-haiku-4-5"), ("gemini", "gemini-2.5-flash"), ("groq", "llama-3.1-8b-instant"),
          ("mistral", "mistral-small-latest"), ("openrouter", "deepseek-chat")]


def make_events(count: int, start: float, seconds: float) -> list[UsageEvent]:
    rng = random.Random(7)
    events = []
    for index in range(count):
        org = rng.randrange(20)
        key = org * 5 + rng.randrange(5)
        provider, model = MODELS[(key * 3 + rng.randrange(2)) % len(MODELS)]
        latency = rng.lognormvariate(6, 0.8)
        ok = rng.random() > 0.02
        tokens = (rng.randrange(10, 4000), rng.randrange(1, 800)) if ok else (None, None)
        events.append(UsageEvent(
            time=start + seconds * index / count, request_id=secrets.token_hex(12), org_id=f"org-{org}",
            key_id=f"key-{key}", user_id=None, principal_kind="key", principal_id=f"key:key-{key}",
            bridge_id=None, bridge_version=None, thread_id=None, endpoint="chat.completions",
            requested_model=f"{provider}/{model}", provider=provider, model=model, deployment=f"{provider}/{model}",
            attempts=1, fallback_used=False, status=200 if ok else 502, error_class=None if ok else "upstream_error",
            error_code=None, input_tokens=tokens[0], output_tokens=tokens[1], cached_tokens=0 if ok else None,
            cache_write_tokens=0 if ok else None, reasoning_tokens=0 if ok else None,
            cost_usd=(tokens[0] * 2.5 + tokens[1] * 10) / 1e6 if ok else None,
            price_input=2.5 if ok else None, price_output=10.0 if ok else None, price_cached_input=1.25 if ok else None,
            price_cache_write=None, price_reasoning=None, price_since="2024-10-01" if ok else None,
            latency_ms=latency, ttft_ms=None, upstream_ms=latency * 0.97, latency_bucket=latency_bucket(latency),
            cache_hit=rng.random() < 0.05, stream=False))
    return events


async def run(server: str, count: int, batch: int) -> None:
    name = f"junction_bench_{secrets.token_hex(4)}"
    admin = create_async_engine(f"{server}/postgres", isolation_level="AUTOCOMMIT")
    async with admin.connect() as connection:
        await connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = f"{server}/{name}"
    settings = settings_from_mapping({"stores": {"metrics": url},
                                      "metrics": {"batch_size": batch, "buffer_size": count, "retain_days": 0,
                                                  "compress_after_days": 0}})
    setup = create_async_engine(url)
    engine = create_async_engine(url, pool_size=4)
    try:
        await migrate.upgrade(setup, settings)
        async with setup.connect() as connection:
            on_timescale = await connection.run_sync(timescale.is_timescale)
        writer = UsageWriter(engine, settings.metrics)  # the database keeps the rollups on both branches
        events = make_events(count, time.time() - 3600, 3600)
        await writer.start()
        cpu_began = time.process_time()
        began = time.perf_counter()
        for event in events:
            writer.record(event)
        recorded = time.perf_counter() - began
        while writer.pending:
            await asyncio.sleep(0.005)
        elapsed = time.perf_counter() - began
        client_cpu = time.process_time() - cpu_began
        await writer.close()
        async with setup.connect() as connection:
            rows = (await connection.execute(sa.text("SELECT count(*) FROM usage_events"))).scalar_one()
            pids = (await connection.execute(sa.text(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"))).scalars().all()
        server_cpu = sum(_cpu_seconds(pid) for pid in pids)
        branch = "TimescaleDB" if on_timescale else "plain PostgreSQL (rollups by trigger)"
        print(f"{branch}: {rows} events committed in {elapsed:.2f}s = {rows / elapsed:,.0f} events/s "
              f"(record() took {recorded / count * 1e6:.2f} us/event; batch {batch}; dropped {writer.dropped}); "
              f"CPU per event: writer process {client_cpu / rows * 1e6:.1f} us, PostgreSQL backends "
              f"{server_cpu / rows * 1e6:.1f} us; load {' '.join(Path('/proc/loadavg').read_text().split()[:3])}")
    finally:
        await engine.dispose()
        await setup.dispose()
        async with admin.connect() as connection:
            await connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of a local process so far (0 when it is not on this machine)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--batch", type=int, default=5_000)
    parser.add_argument("--url", default="postgresql+asyncpg://postgres@127.0.0.1:5432")
    args = parser.parse_args()
    asyncio.run(run(args.url, args.events, args.batch))


if __name__ == "__main__":
    main()
