"""bench/compare.py's ``place_node_services``: the usage relay below a gateway's server moves to the
services' CPU, every thread of it, and nothing else of the server moves; its CPU still counts."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from tests.unit.test_bench_checkout import BENCH

# A server standing in for `junction serve`: one child like a worker, one like the relay (whose
# command line holds its socket's name) with a second thread. The name is split in two here: the
# server's own command line (this script) must not hold it.
SERVER = """
import subprocess, sys, time
worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "worker"])
relay = subprocess.Popen([sys.executable, "-c",
                          "import threading, time; threading.Thread(target=time.sleep, args=(60,)).start(); "
                          "time.sleep(60)", "/tmp/junction-node-x/usage" + "-relay.sock"])
print(worker.pid, relay.pid, flush=True)
time.sleep(60)
"""


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two usable CPUs")
def test_the_relay_moves_to_the_services_cpu_and_the_rest_stays() -> None:
    sys.path.insert(0, str(BENCH))
    try:
        import compare
    finally:
        sys.path.remove(str(BENCH))
    first, services = sorted(os.sched_getaffinity(0))[:2]
    server = subprocess.Popen(["taskset", "-c", str(first), sys.executable, "-c", SERVER],
                              stdout=subprocess.PIPE, text=True)
    children: list[int] = []
    try:
        assert server.stdout is not None
        children = [int(pid) for pid in server.stdout.readline().split()]
        worker, relay = children
        time.sleep(0.3)  # the relay's second thread started
        assert compare.place_node_services(server.pid, services) == 1
        threads = os.listdir(f"/proc/{relay}/task")
        assert len(threads) == 2
        assert all(os.sched_getaffinity(int(thread)) == {services} for thread in threads)
        assert os.sched_getaffinity(worker) == {first} and os.sched_getaffinity(server.pid) == {first}
        assert compare.tree_cpu_seconds(server.pid) >= compare.tree_cpu_seconds(server.pid, compare.RELAY)
    finally:
        server.kill()
        server.wait()
        for pid in children:
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
