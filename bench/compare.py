"""A/B two checkouts of Junction on the same machine at the same time, for before/after numbers.

    python bench/compare.py --base /tmp/junction-before [--new .] [--rounds 6] [--seconds 8] [--settle 2.5]
    python bench/compare.py --base . --new-config '[middleware.metrics]|enabled = false'   # a config A/B
    python bench/compare.py --base . --new-config '[middleware.metrics]|relay = true' --services-cpu 1

A checkout runs with its own ``.venv`` when it has one, else with this Python mapped to its code
(bench/run.py's ``interpreter``: a ``git worktree`` of an older commit needs no venv of its own
while the dependencies match). Both gateways run at once (one
Granian worker each, pinned to CPU 0) in front of one fixed upstream; wrk (CPU 1) alternates
between them round by round, ABBA, so drift of a shared host falls on both alike. Prints the
median and every round of RPS at 32 connections, the gateway's CPU time per request in those
rounds (all its processes, from /proc: far steadier than RPS on a busy host) and p50/p99 latency
at one.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from run import HERE, KEY, free_port, interpreter, pinned, wait_until_up, wrk


def start_gateway(root: Path, upstream_port: int, extra: str = "", workers: int = 1) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    workdir = Path(tempfile.mkdtemp(prefix="junction-compare-"))
    (workdir / "junction.toml").write_text(
        f'[providers.openai]\napi_key = "sk-upstream"\nbase_url = "http://127.0.0.1:{upstream_port}/v1"\n'
        + extra.replace("|", "\n") + "\n")
    python, env = interpreter(root)
    process = subprocess.Popen(pinned(0, [python, "-m", "junction.cli", "serve", "--config", "junction.toml",
                                          "--port", str(port), "--workers", str(workers)]),
                               cwd=workdir, env={**env, "JUNCTION_MASTER_KEY": KEY},
                               stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    return process, port


Side = tuple[Path, str]  # (checkout, TOML added to its config)
#: The usage relay's command line holds this (its socket's name: plugins/middleware/metrics/relay.py).
RELAY = b"usage-relay"


def _processes() -> dict[int, tuple[int, bytes, float]]:
    """Every process: its parent, command line and user + system CPU time so far."""
    found: dict[int, tuple[int, bytes, float]] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            command = (entry / "cmdline").read_bytes()
        except OSError:
            continue  # it ended meanwhile
        found[int(entry.name)] = (int(fields[1]), command, (int(fields[11]) + int(fields[12])) / tick)
    return found


def _tree(root: int, processes: dict[int, tuple[int, bytes, float]]) -> list[int]:
    """``root`` and every process below it."""
    tree, stack = [], [root]
    while stack:
        pid = stack.pop()
        tree.append(pid)
        stack.extend(child for child, (parent, _, _) in processes.items() if parent == pid)
    return tree


def tree_cpu_seconds(root: int, only: bytes | None = None) -> float:
    """User + system CPU time so far of ``root`` and every process below it (Granian's workers,
    the usage relay); ``only``: of those whose command line holds it (e.g. ``b"usage-relay"``)."""
    processes = _processes()
    return sum(processes[pid][2] for pid in _tree(root, processes)
               if pid in processes and (only is None or only in processes[pid][1]))


def place_node_services(root: int, cpu: int) -> int:
    """Move the node services below ``root`` (the usage relay), every thread, to ``cpu``; returns
    how many. A node service works for all of a node's workers, as its database or Redis does:
    it runs where those run here (CPU 1, with wrk and the upstream), not on the core the measured
    worker has to itself. Threads it starts later inherit the placement."""
    processes = _processes()
    moved = 0
    for pid in _tree(root, processes):
        if pid in processes and RELAY in processes[pid][1]:
            for thread in os.listdir(f"/proc/{pid}/task"):
                os.sched_setaffinity(int(thread), {cpu})
            moved += 1
    return moved


def ab(sides: dict[str, Side], rounds: int, seconds: int, workers: int = 1,
       settle: float = 0.0, services_cpu: int | None = None) -> dict[str, dict[str, list[float]]]:
    """Serve both ``sides`` at once in front of one upstream and alternate wrk between them,
    ABBA (more sides: in order, then reversed); every round's RPS and CPU µs per request at 32
    connections and p50/p99 at one, per side. ``settle``: seconds of idle after each loaded run
    whose CPU is charged to it too, so what a side defers to its idle time (the usage ledger
    writes its batches then) is counted; without it, that work can fall between the windows.
    ``services_cpu``: the node services (the usage relay) run on that CPU (:func:`place_node_services`)
    instead of beside the worker; their CPU still counts in ``cpu_us`` (and alone in ``relay_us``)."""
    order = list(sides)
    upstream_port = free_port()
    processes = [subprocess.Popen(pinned(1, [sys.executable, str(HERE / "upstream.py"), "--port", str(upstream_port)]))]
    ports: dict[str, int] = {}
    pids: dict[str, int] = {}
    try:
        for name, (root, extra) in sides.items():
            process, ports[name] = start_gateway(root.resolve(), upstream_port, extra, workers)
            processes.append(process)
            pids[name] = process.pid
        for name, port in ports.items():
            wait_until_up(f"http://127.0.0.1:{port}/healthz", timeout=120)
            if services_cpu is not None and place_node_services(pids[name], services_cpu):
                print(f"{name}: node services on CPU {services_cpu}", file=sys.stderr)
            wrk(f"http://127.0.0.1:{port}/v1/chat/completions", 8, 3)  # warm-up
        results: dict[str, dict[str, list[float]]] = {name: {"rps_32": [], "cpu_us": [], "relay_us": [], "p50_ms": [],
                                                             "p99_ms": []}
                                                      for name in ports}
        for round_ in range(rounds):
            for name in order if round_ % 2 == 0 else order[::-1]:
                url = f"http://127.0.0.1:{ports[name]}/v1/chat/completions"
                one = wrk(url, 1, seconds)
                results[name]["p50_ms"].append(one["p50_ms"])
                results[name]["p99_ms"].append(one["p99_ms"])
                cpu, relay = tree_cpu_seconds(pids[name]), tree_cpu_seconds(pids[name], RELAY)
                loaded = wrk(url, 32, seconds)
                if settle:
                    time.sleep(settle)
                results[name]["cpu_us"].append((tree_cpu_seconds(pids[name]) - cpu) / loaded["requests"] * 1e6)
                results[name]["relay_us"].append((tree_cpu_seconds(pids[name], RELAY) - relay) / loaded["requests"] * 1e6)
                results[name]["rps_32"].append(loaded["rps"])
    finally:
        for process in processes:
            process.terminate()
            process.wait()
    return results


def worker_us(result: dict[str, list[float]]) -> list[float]:
    """Per round, the CPU µs per request of the server less its usage relay's."""
    return [cpu - relay for cpu, relay in zip(result["cpu_us"], result["relay_us"])]


def paired_change(before: list[float], after: list[float]) -> tuple[float, float, float]:
    """The median, lowest and highest of the per-round changes from ``before`` to ``after``. Both
    sides of a round run back to back, so a round's change is free of the host's drift from round
    to round, which on a shared host moves one side's own medians by more than the change itself."""
    changes = sorted(b / a - 1 for a, b in zip(before, after) if a)
    return statistics.median(changes), changes[0], changes[-1]


def report(results: dict[str, dict[str, list[float]]]) -> None:
    """Medians, the change from the first side to the second (of the medians, and paired round by
    round: see :func:`paired_change`), and every round."""
    first, second = results
    for metric in ("rps_32", "cpu_us", "p50_ms", "p99_ms"):
        a, b = (statistics.median(results[name][metric]) for name in (first, second))
        rounds = "  ".join(f"{x:.3f}/{y:.3f}" for x, y in zip(results[first][metric], results[second][metric]))
        median, low, high = paired_change(results[first][metric], results[second][metric])
        print(f"{metric:7} {first} {a:9.3f}  {second} {b:9.3f}  ({(b - a) / a:+.1%}; paired {median:+.1%}, "
              f"rounds {low:+.1%}..{high:+.1%})   rounds {first}/{second}: {rounds}")
    for name, result in results.items():  # the usage relay's share of cpu_us (0 without one), and the rest
        for label, values in (("relay_us", result["relay_us"]), ("worker_us", worker_us(result))):
            print(f"{label:9} {name} {statistics.median(values):6.1f}   rounds "
                  + " ".join(f"{value:.1f}" for value in values))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base", type=Path, required=True)
    parser.add_argument("--new", type=Path, default=HERE.parent)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--settle", type=float, default=0.0, help="idle seconds after each loaded run whose CPU "
                        "counts too (work a side defers to its idle time)")
    parser.add_argument("--base-config", default="", help="TOML added to the base's config ('|' for newlines)")
    parser.add_argument("--new-config", default="", help="TOML added to the new side's config")
    parser.add_argument("--services-cpu", type=int, help="run the node services (the usage relay) on this CPU "
                        "instead of beside the worker (e.g. 1: with wrk and the upstream)")
    args = parser.parse_args()
    report(ab({"base": (args.base, args.base_config), "new": (args.new, args.new_config)},
              args.rounds, args.seconds, args.workers, args.settle, args.services_cpu))


if __name__ == "__main__":
    main()
