"""Queued-jobs benchmark: submit latency, end-to-end jobs/s with one worker, a 10,000-line batch.

    python bench/jobs.py [--jobs 3000] [--submits 1000] [--batch 10000] [--base /work/main] [--rounds 1]

Starts the fixed-response upstream (bench/upstream.py), ``junction serve`` (one Granian worker)
and one ``junction worker`` on the machine's RabbitMQ (a queue of its own, deleted at the end),
with the documents store on a fresh PostgreSQL database (created, migrated by the code under test,
dropped at the end; ``--documents URL`` names another, e.g. a SQLite file). Prints:

* submit latency: ``POST /api/v1/jobs`` one at a time on a keep-alive connection (p50/p95/p99),
  before the worker starts and while it runs the jobs, with the server's CPU per submit;
* end to end: ``--jobs`` jobs submitted on ``--clients`` keep-alive connections, jobs/s from the
  first job stored to the last outcome stored (the jobs table's own timestamps), with the CPU per
  job of the server, the worker, the upstream and this client;
* a batch of ``--batch`` lines through ``POST /api/v1/batches``, its progress as it goes.

The client is a raw HTTP/1.1 one on uvloop (tens of µs per request, its CPU printed): the numbers
are the gateway's, not an HTTP library's. ``--base DIR`` runs the same rounds with the checkout in
DIR (its ``.venv``), alternating with this one, and prints both side by side.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import resource
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from junction.testing.server import serving_workers

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from run import free_port, wait_until_up

KEY = "sk-bench"
AMQP = "amqp://guest:guest@127.0.0.1:5672/"
POSTGRES = "postgresql+asyncpg://postgres@127.0.0.1:5432"
BODY = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "Hello"}]}


def cpu_seconds(pid: int) -> float:
    """User + system CPU a process used so far (Linux): its cost, whatever else loads the host."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


class Http:
    """One keep-alive HTTP/1.1 connection, requests written by hand (answers with content-length)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.head = f"host: 127.0.0.1\r\nauthorization: Bearer {KEY}\r\n".encode()

    async def __aenter__(self) -> Http:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.writer.close()

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        length = b"content-type: application/json\r\ncontent-length: %d\r\n" % len(body) if body else b""
        self.writer.write(b"%s %s HTTP/1.1\r\n%s%s\r\n%s" % (method.encode(), path.encode(), self.head, length, body))
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        size = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                size = int(line[15:])
        return status, await self.reader.readexactly(size) if size else b""


SUBMIT = json.dumps({"request": BODY}).encode()


async def submit_latency(port: int, count: int) -> list[float]:
    timings = []
    async with Http(port) as http:
        for _ in range(count):
            started = time.perf_counter()
            status, answer = await http.request("POST", "/api/v1/jobs", SUBMIT)
            timings.append((time.perf_counter() - started) * 1000)
            assert status == 202, answer
    return timings


async def read_latency(port: int, count: int) -> list[float]:
    """The floor of this host: a GET of one job (the same authentication, one indexed read)."""
    timings = []
    async with Http(port) as http:
        job_id = json.loads((await http.request("GET", "/api/v1/jobs?limit=1"))[1])["data"][0]["id"]
        for _ in range(count):
            started = time.perf_counter()
            status, answer = await http.request("GET", f"/api/v1/jobs/{job_id}")
            timings.append((time.perf_counter() - started) * 1000)
            assert status == 200, answer
    return timings


async def poll(documents: str, query: str, done: Any, timeout: float = 900) -> Any:
    engine = create_async_engine(documents)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            async with engine.connect() as connection:
                row = (await connection.execute(sa.text(query))).one()
            if done(row):
                return row
            await asyncio.sleep(0.1)
    finally:
        await engine.dispose()
    raise SystemExit(f"timed out polling: {query}")


async def end_to_end(port: int, documents: str, count: int, clients: int) -> tuple[float, float]:
    """Submit ``count`` jobs on ``clients`` connections; returns (submits/s, jobs/s end to end)."""
    remaining = [count]

    async def client() -> None:
        async with Http(port) as http:
            while remaining[0] > 0:
                remaining[0] -= 1
                status, answer = await http.request("POST", "/api/v1/jobs", SUBMIT)
                assert status == 202, answer

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    submitted = time.perf_counter() - started
    first, last, _ = await poll(
        documents, "SELECT min(created_at), max(finished_at), sum(CASE WHEN status = 'succeeded' THEN 0 ELSE 1 END) "
                   "FROM jobs WHERE batch_id IS NULL AND id NOT IN (SELECT id FROM bench_before)",
        lambda row: row[2] == 0)
    # PostgreSQL hands back datetimes, SQLite (a plain text query) ISO strings.
    first, last = (value if isinstance(value, datetime) else datetime.fromisoformat(value) for value in (first, last))
    return count / submitted, count / (last - first).total_seconds()


async def batch(port: int, size: int) -> float | None:
    async with Http(port) as http:
        started = time.perf_counter()
        status, answer = await http.request("POST", "/api/v1/batches", json.dumps({"requests": [BODY] * size}).encode())
        if status != 202:
            print(f"    the batch was refused after {time.perf_counter() - started:.1f}s: {status} {answer[:300]!r}")
            return None
        batch_id = json.loads(answer)["id"]
        print(f"    batch of {size} accepted in {time.perf_counter() - started:.2f}s")
        while True:
            view = json.loads((await http.request("GET", f"/api/v1/batches/{batch_id}?results=false"))[1])
            counts = view["counts"]
            print(f"    {time.perf_counter() - started:6.1f}s  {view['status']:<11} progress {view['progress']:.3f}  "
                  f"succeeded {counts['succeeded']:>6}  running {counts['running']:>3}  queued {counts['queued']:>6}")
            if view["status"] == "completed":
                break
            await asyncio.sleep(1.0)
    elapsed = time.perf_counter() - started
    print(f"    batch completed in {elapsed:.1f}s ({size / elapsed:.0f} items/s)")
    return elapsed


def run(args: argparse.Namespace, side: str, python: str) -> dict[str, float]:
    """One round with the code ``python`` imports ``junction`` from."""
    created = asyncio.run(_admin_create()) if args.documents is None else None
    results: dict[str, float] = {}
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
        subprocess.run([python, "-m", "junction.cli", "migrate", "--config", str(config)], cwd=directory, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        processes = [
            subprocess.Popen([sys.executable, str(HERE / "upstream.py"), "--port", str(upstream_port)]),
            subprocess.Popen([python, "-m", "junction.cli", "serve", "--config", str(config), "--port", str(port),
                              "--workers", "1"], cwd=directory, stderr=(Path(directory) / "serve.log").open("wb")),
        ]
        try:
            try:
                wait_until_up(f"http://127.0.0.1:{port}/healthz")
            except SystemExit:
                print((Path(directory) / "serve.log").read_text()[-3000:])
                raise
            server = serving_workers(processes[1].pid)[0]
            print(f"  [{side}] load average {_load()}")
            _uv(submit_latency(port, 100))  # warm-up
            # Before the worker starts: the submit alone, without a worker competing for this
            # host's CPUs (in production workers run elsewhere).
            before = cpu_seconds(server)
            alone = _uv(submit_latency(port, args.submits))
            results["submit_cpu_ms"] = (cpu_seconds(server) - before) / args.submits * 1000
            reads = _uv(read_latency(port, args.submits))
            results.update(submit_p50=statistics.median(alone), submit_p95=percentile(alone, 0.95),
                           read_p50=statistics.median(reads))
            print(f"  [{side}] submit, {args.submits} sequential POST /api/v1/jobs, no worker yet: p50 "
                  f"{results['submit_p50']:.2f} ms, p95 {results['submit_p95']:.2f} ms, p99 "
                  f"{percentile(alone, 0.99):.2f} ms; server CPU {results['submit_cpu_ms']:.2f} ms per submit; "
                  f"GET /api/v1/jobs/{{id}} p50 {results['read_p50']:.2f} ms")
            processes.append(subprocess.Popen(
                [python, "-m", "junction.cli", "worker", "--config", str(config), "--concurrency",
                 str(args.concurrency)], cwd=directory, stderr=subprocess.DEVNULL))
            worker = processes[2].pid
            _uv(poll(documents, "SELECT count(*) FROM jobs WHERE status IN ('queued', 'running')",
                     lambda row: row[0] == 0))
            spies = _spy(args.profile, side, {"server": server, "worker": worker}) if args.profile else []
            timings = _uv(submit_latency(port, args.submits))
            results.update(busy_p50=statistics.median(timings), busy_p95=percentile(timings, 0.95))
            print(f"  [{side}] submit, the worker running the jobs: p50 {results['busy_p50']:.2f} ms, "
                  f"p95 {results['busy_p95']:.2f} ms")
            _uv(poll(documents, "SELECT count(*) FROM jobs WHERE status IN ('queued', 'running')",
                     lambda row: row[0] == 0))
            _uv(_mark_before(documents))
            pids = {"server": server, "worker": worker, "upstream": processes[0].pid}
            cpu = {name: cpu_seconds(pid) for name, pid in pids.items()}
            client_cpu = own_cpu()
            backends = _uv(_backend_cpu(documents, {}))
            submits, jobs_per_second = _uv(end_to_end(port, documents, args.jobs, args.clients))
            per_job = {name: (cpu_seconds(pid) - cpu[name]) / args.jobs * 1000 for name, pid in pids.items()}
            per_job["client"] = (own_cpu() - client_cpu) / args.jobs * 1000
            if backends is not None:
                per_job["postgres"] = sum(_uv(_backend_cpu(documents, backends)).values()) / args.jobs * 1000
            results.update(e2e=jobs_per_second, submitted=submits, **{f"{name}_ms": ms for name, ms in per_job.items()})
            print(f"  [{side}] end to end, {args.jobs} jobs on {args.clients} connections, one worker (concurrency "
                  f"{args.concurrency}): {jobs_per_second:.0f} jobs/s (submitted at {submits:.0f}/s); CPU per "
                  "job: " + ", ".join(f"{name} {ms:.2f} ms" for name, ms in per_job.items()) +
                  f"; load average {_load()}")
            for spy in spies:
                spy.send_signal(signal.SIGINT)
                spy.wait(timeout=60)
            if args.batch and (seconds := _uv(batch(port, args.batch))) is not None:
                results["batch_s"] = seconds
        finally:
            for process in reversed(processes):
                process.terminate()
                process.wait(timeout=15)
            try:
                asyncio.run(_delete_queue(queue))
            finally:
                if created is not None:
                    asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{created}" WITH (FORCE)'))
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=3000)
    parser.add_argument("--submits", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=64, help="the worker's concurrency")
    parser.add_argument("--clients", type=int, default=32, help="connections submitting the end-to-end jobs")
    parser.add_argument("--documents", help="documents store URL (default: a fresh PostgreSQL database)")
    parser.add_argument("--base", metavar="DIR", help="also run the checkout in DIR (its .venv), alternating")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--profile", metavar="DIR", help="py-spy the server and the worker through the submit "
                                                         "and end-to-end runs (raw stacks into DIR)")
    args = parser.parse_args()
    sides = [("this", sys.executable)]
    if args.base:
        sides.insert(0, ("base", str(Path(args.base).resolve() / ".venv" / "bin" / "python")))
    table: dict[str, list[dict[str, float]]] = {name: [] for name, _ in sides}
    for number in range(args.rounds):
        for name, python in sides:
            print(f"round {number + 1}, {name} ({python})")
            table[name].append(run(args, name, python))
    columns = [("submit_p50", "submit p50 ms"), ("submit_p95", "p95"), ("submit_cpu_ms", "server CPU/submit"),
               ("busy_p50", "p50 w/ worker"), ("e2e", "e2e jobs/s"), ("server_ms", "CPU/job server"),
               ("worker_ms", "worker"), ("postgres_ms", "postgres"), ("upstream_ms", "upstream"),
               ("client_ms", "client"),
               ("batch_s", "batch s")]
    print("\n" + " | ".join(["side"] + [title for _, title in columns]))
    for name, rounds in table.items():
        for results in rounds:
            print(" | ".join([name] + [f"{results[key]:.2f}" if key in results else "-" for key, _ in columns]))
    print(f"load average at the end: {_load()}")


def _uv(coroutine: Any) -> Any:
    try:
        import uvloop

        return uvloop.run(coroutine)
    except ImportError:
        return asyncio.run(coroutine)


def _load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


async def _backend_cpu(documents: str, since: dict[int, float]) -> dict[int, float] | None:
    """CPU seconds of the PostgreSQL backends serving this database (minus ``since``); ``None``
    for another database (their CPU is not told apart)."""
    if not documents.startswith("postgresql"):
        return None
    engine = create_async_engine(documents)
    try:
        async with engine.connect() as connection:
            pids = (await connection.execute(sa.text(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
            ))).scalars().all()
    finally:
        await engine.dispose()
    found = {}
    for pid in pids:
        try:
            found[pid] = cpu_seconds(pid) - since.get(pid, 0.0)
        except OSError:  # gone meanwhile
            continue
    return found


async def _mark_before(documents: str) -> None:
    """Remember the jobs already there: the end-to-end count is of the new ones."""
    engine = create_async_engine(documents)
    try:
        async with engine.begin() as connection:
            await connection.execute(sa.text("DROP TABLE IF EXISTS bench_before"))
            await connection.execute(sa.text("CREATE TABLE bench_before AS SELECT id FROM jobs"))
    finally:
        await engine.dispose()


async def _admin(statement: str) -> None:
    engine = create_async_engine(f"{POSTGRES}/postgres", isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            await connection.execute(sa.text(statement))
    finally:
        await engine.dispose()


async def _admin_create() -> str:
    name = f"junction_bench_{secrets.token_hex(4)}"
    await _admin(f'CREATE DATABASE "{name}"')
    return name


def _spy(directory: str, side: str, pids: dict[str, int]) -> list[subprocess.Popen[bytes]]:
    Path(directory).mkdir(parents=True, exist_ok=True)
    py_spy = Path(sys.executable).parent / "py-spy"
    return [subprocess.Popen([str(py_spy), "record", "--nonblocking", "-r", "200", "-f", "raw", "-p", str(pid),
                              "-o", str(Path(directory) / f"{side}-{name}.txt")], stdout=subprocess.DEVNULL)
            for name, pid in pids.items()]


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
