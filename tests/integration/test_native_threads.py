"""A served worker runs Granian's native threads as SCHED_BATCH (they stop preempting its Python
thread), keeps its Python thread at the default policy, and leaves them all alone when
``[server] batch_native_threads = false``. Read from outside, in /proc, as an admin would."""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx
import pytest

from junction.testing.server import JunctionProcess
from tests.conftest import openai_provider_table
from tests.fakes.openai_upstream import FakeOpenAI

pytestmark = pytest.mark.skipif(not hasattr(os, "SCHED_BATCH") or not Path("/proc/self/task").is_dir(),
                                reason="scheduling policies as Linux has them")


def _threads(pid: int) -> dict[int, tuple[str, int]]:
    """``tid -> (name, policy)`` of a process's threads."""
    threads = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            threads[int(task.name)] = ((task / "comm").read_text().strip(), os.sched_getscheduler(int(task.name)))
        except (FileNotFoundError, ProcessLookupError):
            continue  # ended meanwhile
    return threads


def _worker(server: JunctionProcess) -> int:
    """The one Granian worker (whose runtime threads have started once it answered a request)."""
    (worker,) = server.worker_pids()
    assert any(name.startswith("tokio") for name, _ in _threads(worker).values()), _threads(worker)
    return worker


def _chat(server: JunctionProcess) -> None:
    response = httpx.post(f"{server.url}/v1/chat/completions", timeout=10,
                          headers={"authorization": f"Bearer {server.key}"},
                          json={"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
    assert response.status_code == 200, response.text


def test_the_runtime_threads_run_as_batch_and_the_python_thread_does_not(gateway: JunctionProcess,
                                                                         fake_openai: FakeOpenAI) -> None:
    _chat(gateway)
    worker = _worker(gateway)
    deadline = time.monotonic() + 10
    while True:
        threads = _threads(worker)
        runtime = {tid: policy for tid, (name, policy) in threads.items() if name.startswith("tokio")}
        if runtime and all(policy == os.SCHED_BATCH for policy in runtime.values()):
            break
        assert time.monotonic() < deadline, f"runtime threads still {runtime} after 10 s"
        time.sleep(0.1)
    assert threads[worker][1] == os.SCHED_OTHER  # the event loop's own thread (tid = pid)
    _chat(gateway)  # and it serves as before


def test_turned_off_every_thread_keeps_the_default_policy(fake_openai_server: FakeOpenAI, tmp_path: Path) -> None:
    config = openai_provider_table(fake_openai_server) + "[server]\nbatch_native_threads = false\n"
    with JunctionProcess(tmp_path, config) as server:
        _chat(server)
        worker = _worker(server)
        time.sleep(1.5)  # past the first look (0.5 s after start-up) of a policy that were on
        threads = _threads(worker)
        assert {policy for _, policy in threads.values()} == {os.SCHED_OTHER}, threads
