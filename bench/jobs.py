"""Queued-jobs benchmark: submit latency, end-to-end jobs/s with one worker, a 10,000-line batch.

    python bench/jobs.py [--jobs 2000] [--batch 10000] [--documents URL] [--concurrency 64]

Starts the fixed-response upstream (bench/upstream.py), ``junction serve`` (one Granian worker)
and one ``junction worker`` on the machine's RabbitMQ (a queue of its own, deleted at the end),
with the documents store on a fresh PostgreSQL database (created, migrated, dropped at the end;
``--documents URL`` names another, e.g. a SQLite file). Prints:

* submit latency: ``POST /api/v1/jobs`` one at a time on a keep-alive connection (p50/p99);
* end to end: jobs submitted by 32 concurrent clients, from the first submit to the last outcome
  stored (the jobs table's own timestamps);
* a batch of ``--batch`` lines through ``POST /api/v1/batches``, its progress as it goes.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
from run import free_port, wait_until_up

KEY = "sk-bench"
AMQP = "amqp://guest:guest@127.0.0.1:5672/"
POSTGRES = "postgresql+asyncpg://postgres@127.0.0.1:5432"
BODY = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "Hello"}]}


def cpu_seconds(pid: int) -> float:
    """User + system CPU a process used so far (Linux): its cost, whatever else loads the host."""
    import os

    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


async def submit_latency(url: str, count: int) -> list[float]:
    timings = []
    async with httpx.AsyncClient(base_url=url, headers={"authorization": f"Bearer {KEY}"}, timeout=60) as http:
        for _ in range(count):
            started = time.perf_counter()
            response = await http.post("/api/v1/jobs", json={"request": BODY})
            timings.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 202, response.text
    return timings


async def read_latency(url: str, count: int) -> list[float]:
    """The floor of this host: a GET of one job (the same authentication, one indexed read)."""
    timings = []
    async with httpx.AsyncClient(base_url=url, headers={"authorization": f"Bearer {KEY}"}, timeout=60) as http:
        job_id = (await http.get("/api/v1/jobs", params={"limit": "1"})).json()["data"][0]["id"]
        for _ in range(count):
            started = time.perf_counter()
            response = await http.get(f"/api/v1/jobs/{job_id}")
            timings.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, response.text
    return timings


async def wait_finished(documents: str, expected: int, since: float, timeout: float = 600) -> tuple[int, float]:
    """Poll the jobs table until ``expected`` jobs created since ``since`` finished; returns the
    count and the seconds from the first created to the last finished."""
    engine = create_async_engine(documents)
    query = sa.text("SELECT count(*), min(created_at), max(finished_at) FROM jobs WHERE status = 'succeeded' "
                    "AND batch_id IS NULL AND created_at >= :since")
    deadline = time.monotonic() + timeout
    from datetime import UTC, datetime

    cutoff = datetime.fromtimestamp(since, UTC).replace(tzinfo=None)
    try:
        while time.monotonic() < deadline:
            async with engine.connect() as connection:
                done, first, last = (await connection.execute(query, {"since": cutoff})).one()
            if done >= expected:
                # PostgreSQL hands back datetimes, SQLite (a plain text query) ISO strings.
                first, last = (value if isinstance(value, datetime) else datetime.fromisoformat(value)
                               for value in (first, last))
                return done, (last - first).total_seconds()
            await asyncio.sleep(0.2)
    finally:
        await engine.dispose()
    raise SystemExit(f"only {done} of {expected} jobs finished in {timeout}s")


async def wait_drained(documents: str, timeout: float = 120) -> None:
    """Until no job is queued or running (the previous step's jobs are done)."""
    engine = create_async_engine(documents)
    query = sa.text("SELECT count(*) FROM jobs WHERE status IN ('queued', 'running')")
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            async with engine.connect() as connection:
                if not await connection.scalar(query):
                    return
            await asyncio.sleep(0.2)
    finally:
        await engine.dispose()


async def end_to_end(url: str, documents: str, count: int) -> tuple[float, float]:
    since = time.time() - 1
    queue: asyncio.Queue[int] = asyncio.Queue()
    for index in range(count):
        queue.put_nowait(index)

    async def client() -> None:
        async with httpx.AsyncClient(base_url=url, headers={"authorization": f"Bearer {KEY}"}, timeout=60) as http:
            while not queue.empty():
                queue.get_nowait()
                response = await http.post("/api/v1/jobs", json={"request": BODY})
                assert response.status_code == 202, response.text

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(32)))
    submitted = time.perf_counter() - started
    done, seconds = await wait_finished(documents, count, since)
    return count / submitted, done / seconds


async def batch(url: str, size: int) -> None:
    async with httpx.AsyncClient(base_url=url, headers={"authorization": f"Bearer {KEY}"}, timeout=300) as http:
        started = time.perf_counter()
        response = await http.post("/api/v1/batches", json={"requests": [BODY] * size})
        assert response.status_code == 202, response.text
        batch_id = response.json()["id"]
        print(f"  batch of {size} accepted in {time.perf_counter() - started:.2f}s")
        while True:
            view = (await http.get(f"/api/v1/batches/{batch_id}", params={"results": "false"})).json()
            counts = view["counts"]
            print(f"  {time.perf_counter() - started:6.1f}s  {view['status']:<11} progress {view['progress']:.3f}  "
                  f"succeeded {counts['succeeded']:>6}  running {counts['running']:>3}  queued {counts['queued']:>6}")
            if view["status"] == "completed":
                break
            await asyncio.sleep(1.0)
        elapsed = time.perf_counter() - started
        print(f"  batch completed in {elapsed:.1f}s ({size / elapsed:.0f} items/s)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--submits", type=int, default=500)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--documents", help="documents store URL (default: a fresh PostgreSQL database)")
    parser.add_argument("--profile", metavar="DIR", help="py-spy the server and the worker through the submit "
                                                         "and end-to-end runs (raw stacks into DIR)")
    args = parser.parse_args()
    root = Path(__file__).resolve().parent.parent
    created = None
    if args.documents is None:
        created = asyncio.run(_create_database())
    with tempfile.TemporaryDirectory() as directory:
        documents = args.documents or f"{POSTGRES}/{created}"
        upstream_port, port = free_port(), free_port()
        queue = f"junction.bench.{secrets.token_hex(4)}"
        config = Path(directory) / "junction.toml"
        config.write_text(f"""
[auth]
master_key = "{KEY}"
[providers.openai]
api_key = "sk-upstream"
base_url = "http://127.0.0.1:{upstream_port}/v1"
models = ["gpt-4o-mini"]
[stores]
documents = "{documents}"
queue = "{AMQP}"
[security]
encryption_keys = [{{ id = "bench", key = "{base64.b64encode(secrets.token_bytes(32)).decode()}" }}]
[jobs]
queue_name = "{queue}"
max_batch_requests = {max(args.batch, 1)}
""", encoding="utf-8")
        processes = [
            subprocess.Popen([sys.executable, str(HERE / "upstream.py"), "--port", str(upstream_port)]),
            subprocess.Popen([sys.executable, "-m", "junction.cli", "serve", "--config", str(config), "--port", str(port),
                              "--workers", "1"], cwd=directory, stderr=subprocess.DEVNULL),
        ]
        try:
            url = f"http://127.0.0.1:{port}"
            wait_until_up(f"{url}/healthz")
            asyncio.run(submit_latency(url, 50))  # warm-up
            # Before the worker starts: the submit alone, without a worker competing for this
            # host's CPUs (in production workers run elsewhere).
            alone = asyncio.run(submit_latency(url, args.submits))
            reads = asyncio.run(read_latency(url, args.submits))
            print(f"submit latency over {args.submits} sequential POST /api/v1/jobs, no worker consuming yet: "
                  f"p50 {statistics.median(alone):.2f} ms, p99 {percentile(alone, 0.99):.2f} ms; "
                  f"then GET /api/v1/jobs/{{id}}, as many: p50 {statistics.median(reads):.2f} ms")
            processes.append(subprocess.Popen(
                [sys.executable, "-m", "junction.cli", "worker", "--config", str(config), "--concurrency",
                 str(args.concurrency)], cwd=directory, stderr=subprocess.DEVNULL, env={"PYTHONPATH": str(root),
                                                                                       **_environ()}))
            asyncio.run(wait_drained(documents))
            server_pid = _granian_worker(processes[1].pid)
            spies = _spy(args.profile, {"server": server_pid, "worker": processes[2].pid}) if args.profile else []
            before = cpu_seconds(server_pid)
            timings = asyncio.run(submit_latency(url, args.submits))
            server_cpu = (cpu_seconds(server_pid) - before) / args.submits * 1000
            print(f"submit latency over {args.submits} sequential POST /api/v1/jobs, the worker running them: "
                  f"p50 {statistics.median(timings):.2f} ms, p99 {percentile(timings, 0.99):.2f} ms "
                  f"(server CPU {server_cpu:.2f} ms per submit)")
            asyncio.run(wait_drained(documents))
            worker_before = cpu_seconds(processes[2].pid)
            submits, jobs_per_second = asyncio.run(end_to_end(url, documents, args.jobs))
            worker_cpu = (cpu_seconds(processes[2].pid) - worker_before) / args.jobs * 1000
            print(f"end to end, {args.jobs} jobs, one worker (concurrency {args.concurrency}): "
                  f"{jobs_per_second:.0f} jobs/s (submitted at {submits:.0f}/s); worker CPU {worker_cpu:.2f} ms "
                  f"per job, i.e. {1000 / worker_cpu:.0f} jobs/s per core")
            for spy in spies:
                spy.send_signal(signal.SIGINT)
                spy.wait(timeout=60)
            if args.batch:
                asyncio.run(batch(url, args.batch))
        finally:
            for process in reversed(processes):
                process.terminate()
                process.wait(timeout=15)
            try:
                asyncio.run(_delete_queue(queue))
            finally:
                if created is not None:
                    asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{created}" WITH (FORCE)'))


async def _admin(statement: str) -> None:
    engine = create_async_engine(f"{POSTGRES}/postgres", isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            await connection.execute(sa.text(statement))
    finally:
        await engine.dispose()


async def _create_database() -> str:
    """A fresh database at the newest schema (what ``junction migrate`` does)."""
    from junction.stores.documents.sql_schema import upgrade_to_head

    name = f"junction_bench_{secrets.token_hex(4)}"
    await _admin(f'CREATE DATABASE "{name}"')
    engine = create_async_engine(f"{POSTGRES}/{name}")
    try:
        await upgrade_to_head(engine)
    finally:
        await engine.dispose()
    return name


def _granian_worker(parent: int) -> int:
    """The Granian worker process serving requests (a child of ``junction serve``)."""
    children = Path(f"/proc/{parent}/task/{parent}/children")
    found = children.read_text().split() if children.exists() else []
    return int(found[0]) if found else parent


def _spy(directory: str, pids: dict[str, int]) -> list[subprocess.Popen[bytes]]:
    Path(directory).mkdir(parents=True, exist_ok=True)
    py_spy = Path(sys.executable).parent / "py-spy"
    return [subprocess.Popen([str(py_spy), "record", "--nonblocking", "-r", "200", "-f", "raw", "-p", str(pid),
                              "-o", str(Path(directory) / f"{name}.txt")], stdout=subprocess.DEVNULL)
            for name, pid in pids.items()]


def _environ() -> dict[str, str]:
    import os

    return dict(os.environ)


async def _delete_queue(name: str) -> None:
    import aio_pika

    connection = await aio_pika.connect(AMQP)
    try:
        channel = await connection.channel()
        for queue in (name, f"{name}.dead_letter"):
            await channel.queue_delete(queue)
        await channel.exchange_delete(name)
    finally:
        await connection.close()


if __name__ == "__main__":
    main()
