"""The usage relay (plugins/middleware/metrics/relay.py): under ``junction serve`` the workers hand
their finished calls to one process per node, which writes the ledger rows and the Prometheus
samples; a worker whose relay is gone records its calls itself, losing none."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sqlite3
import time
from pathlib import Path

import httpx
import msgspec
import pytest
from prometheus_client.parser import text_string_to_metric_families

from junction.middleware.metrics.config import usable_cpus
from junction.middleware.metrics.events import finished
from junction.middleware.metrics.relay import MAX_FRAME, CallsBatch, RelayClient, _Frames, frame
from junction.testing.server import JunctionProcess
from tests.conftest import openai_provider_table
from tests.metrics.test_usage_events import USAGES, ended_call


def test_frames_are_found_however_the_stream_is_cut() -> None:
    payloads = [b"a" * 10, b"", b"b" * 70_000]
    stream = b"".join(frame(payload) for payload in payloads)
    frames = _Frames()
    found = []
    for start in range(0, len(stream), 7):
        found += frames.feed(stream[start:start + 7])
    assert found == payloads


def test_a_frame_past_the_bound_is_refused() -> None:
    with pytest.raises(ValueError, match="usage relay frame"):
        _Frames().feed((MAX_FRAME + 1).to_bytes(4, "big"))


def test_without_a_relay_the_worker_keeps_its_calls(tmp_path: Path) -> None:
    async def attempt() -> tuple[bool, bool]:
        client = RelayClient(str(tmp_path / "nobody.sock"))
        reached = await client.connect()
        return reached, client.send([])

    assert asyncio.run(attempt()) == (False, False)  # the stage then records them itself


def test_a_batch_crosses_as_the_same_tuples() -> None:
    # What the relay decodes is what the worker kept: the same Structs, so the same rows and samples.
    kept = [finished(ended_call(usage)) for usage in USAGES] + [finished(ended_call(None, status=502))]
    sent = msgspec.msgpack.encode(CallsBatch(kept))
    assert msgspec.msgpack.decode(sent, type=CallsBatch).calls == kept


class _Stalled(asyncio.Protocol):
    """A relay that takes nothing (busy elsewhere, or stopped)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.pause_reading()  # type: ignore[attr-defined]


def test_a_relay_that_is_behind_leaves_the_calls_to_the_worker(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("junction.middleware.metrics.relay.MAX_BEHIND", 256 * 1024)
    batch = [finished(ended_call(USAGES[1]))] * 200  # ~80 KB a frame

    async def send_until_refused() -> list[bool]:
        address = str(tmp_path / "stalled.sock")
        server = await asyncio.get_running_loop().create_unix_server(_Stalled, address)
        client = RelayClient(address)
        assert await client.connect()
        sent = [client.send(batch) for _ in range(100)]  # the socket's buffers fill, then the bound
        client._transport.abort()  # type: ignore[union-attr]
        server.close()
        return sent

    sent = asyncio.run(send_until_refused())
    assert sent[0] and not sent[-1]
    assert sent.index(False) > 1 and not any(sent[sent.index(False):])  # refused from then on


def _rows(directory: Path) -> int:
    path = directory / "junction-metrics.db"
    if not path.exists():
        return 0
    with sqlite3.connect(path) as database:
        try:
            return database.execute("SELECT count(*) FROM usage_events").fetchone()[0]
        except sqlite3.OperationalError:  # not migrated yet
            return 0


def _requests(scrape: str) -> float:
    return sum(sample.value for family in text_string_to_metric_families(scrape) for sample in family.samples
               if sample.name == "junction_requests_total")


def _call(server: JunctionProcess, count: int) -> None:
    body = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    for _ in range(count):  # a new connection each time, so both workers answer some
        answer = httpx.post(f"{server.url}/v1/chat/completions", json=body, timeout=20,
                            headers={"authorization": f"Bearer {server.key}"})
        assert answer.status_code == 200


def _wait_for(condition, seconds: float = 15.0) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.mark.slow
def test_workers_record_their_own_calls_once_the_relay_is_gone(fake_openai_server, tmp_path: Path) -> None:
    config = openai_provider_table(fake_openai_server) + ("\n[metrics]\nflush_seconds = 0.2\n"
                                                          "[middleware.metrics]\nrelay = true\n")
    with JunctionProcess(tmp_path, config, workers=2) as server:
        assert _wait_for(lambda: server.output().count("this worker's calls go there") == 2), server.output()
        relay = int(re.search(r"usage relay \(pid (\d+)\) listening", server.output()).group(1))
        assert relay not in server.worker_pids()
        assert os.sched_getscheduler(relay) == os.SCHED_IDLE  # it yields the workers' cores
        _call(server, 8)
        assert _wait_for(lambda: _rows(tmp_path) == 8), server.output()  # written by the relay
        # Whichever worker answers, /metrics has every worker's calls: it has the relay write first.
        for _ in range(4):
            scrape = httpx.get(f"{server.url}/metrics", timeout=20).text
            assert _requests(scrape) == 8
        os.kill(relay, signal.SIGKILL)
        assert _wait_for(lambda: server.output().count("went away") == 2), server.output()
        _call(server, 9)
        assert _wait_for(lambda: _rows(tmp_path) == 17), server.output()  # by the workers themselves
    assert _rows(tmp_path) == 17


@pytest.mark.slow
@pytest.mark.skipif(usable_cpus() < 2, reason="needs two usable CPUs (affinity and quota)")
@pytest.mark.parametrize("pinned", [False, True])
def test_the_relay_runs_by_default_where_a_core_is_left_idle(fake_openai_server, tmp_path: Path,
                                                            pinned: bool) -> None:
    """``relay = "auto"`` (the default): one worker on a node with more CPUs gets the relay; the same
    server pinned to one CPU (as ``taskset -c 0`` would) records in its worker."""
    config = openai_provider_table(fake_openai_server) + "\n[metrics]\nflush_seconds = 0.2\n"
    server = JunctionProcess(tmp_path, config, workers=1)
    mine = os.sched_getaffinity(0)
    if pinned:  # the server inherits the affinity of the thread that starts it
        os.sched_setaffinity(0, {min(mine)})
    try:
        server.start()
    finally:
        os.sched_setaffinity(0, mine)
    try:
        _call(server, 5)
        assert _wait_for(lambda: _rows(tmp_path) == 5), server.output()
        output = server.output()
    finally:
        server.stop()
    assert ("node service usage-relay on" in output) is not pinned, output
    assert ("this worker's calls go there" in output) is not pinned, output
