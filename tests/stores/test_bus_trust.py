"""The change bus knows when it can no longer vouch for caches (#16): a throwaway redis-server that
is frozen (no answer, connection kept) or killed makes ``trusted()`` false within about a second,
and it is true again once Redis answers."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from junction.stores.notify import TRUST_SECONDS, RedisChangeBus
from junction.testing.upstream import free_port


@pytest.fixture
def throwaway_redis(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    port = free_port()
    process = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                "--appendonly", "no", "--dir", str(tmp_path)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    yield f"redis://127.0.0.1:{port}/0", process
    if process.poll() is None:
        os.kill(process.pid, signal.SIGCONT)
        process.kill()
        process.wait()


async def until(condition, within: float) -> float:
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < within, "not within the deadline"
        await asyncio.sleep(0.05)
    return time.monotonic() - started


async def test_a_frozen_redis_is_noticed_and_its_return_too(throwaway_redis):
    url, process = throwaway_redis
    bus = RedisChangeBus(url)
    await bus.start()
    try:
        await asyncio.sleep(2 * TRUST_SECONDS)  # idle: the heartbeat keeps it trusted
        assert bus.trusted()
        os.kill(process.pid, signal.SIGSTOP)
        waited = await until(lambda: not bus.trusted(), within=3)
        assert waited <= TRUST_SECONDS + 0.5
        with pytest.raises((RuntimeError, TimeoutError, OSError)):
            await asyncio.wait_for(bus.ping(), 0.5)
        os.kill(process.pid, signal.SIGCONT)
        await until(bus.trusted, within=3)
        await bus.ping()
    finally:
        await bus.close()


async def test_a_killed_redis_is_noticed(throwaway_redis):
    url, process = throwaway_redis
    bus = RedisChangeBus(url)
    await bus.start()
    try:
        process.kill()
        process.wait()
        waited = await until(lambda: not bus.trusted(), within=3)
        assert waited <= TRUST_SECONDS + 0.5
    finally:
        await bus.close()
