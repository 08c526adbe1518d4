"""The Redis reply poll (``[server] redis_reply_poll_us``) on vs off, at 1, 2, 4 and 8 connections.

    python bench/reply_poll.py [--rounds 3] [--poll-us 300] [--against-us 0] [--seconds 4] [--base DIR]

Two gateways from this checkout (one Granian worker each, pinned to CPU 0), rate limits, budgets
and the response cache on against a private ``redis-server`` (CPU 1): "traffic" with the poll off
(or with ``--against-us N``, polling N µs: two bounds compared), "polled" with it on. wrk sends
requests never asked before (cache misses) at 1 (p50), 2, 4 and 8 connections (RPS), then one
request repeated at 1 (a hit's p50), alternating ABBA round by round. ``--base DIR`` serves the
"traffic" side from another checkout (e.g. the commit before a change of the poll, with
``--against-us`` its setting): a before/after at every load, paired round by round.
Prints the medians and every round. Where the poll can cost: a request arriving while the worker
polls for another's reply waits for it (2 to 4 connections).
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from cache import wrk_unique
from compare import paired_change
from run import HERE, free_port, pinned, wait_until_up, wrk
from traffic import CACHE, HIT_BODY, TRAFFIC, forget, limited_key, start_gateway, wait_for_redis

CONNECTIONS = (1, 2, 4, 8)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--poll-us", type=int, default=300)
    parser.add_argument("--against-us", type=int, default=0, help="the other side's poll (default 0: off)")
    parser.add_argument("--seconds", type=int, default=4)
    parser.add_argument("--base", type=Path, help="serve the 'traffic' side from this checkout")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="junction-reply-poll-"))
    upstream_port, redis_port = free_port(), free_port()
    processes = [
        subprocess.Popen(pinned(1, [sys.executable, str(HERE / "upstream.py"), "--port", str(upstream_port)])),
        subprocess.Popen(pinned(1, ["redis-server", "--port", str(redis_port), "--save", "", "--appendonly", "no",
                                    "--dir", str(workdir)]), stdout=subprocess.DEVNULL),
    ]
    url = f"redis://127.0.0.1:{redis_port}/0"
    wait_for_redis(url)
    sides = {"traffic": TRAFFIC + CACHE + f"\n[server]\nredis_reply_poll_us = {args.against_us}\n",
             "polled": TRAFFIC + CACHE + f"\n[server]\nredis_reply_poll_us = {args.poll_us}\n"}
    ports: dict[str, int] = {}
    try:
        for name, extra in sides.items():
            source = args.base if name == "traffic" else None
            process, ports[name] = start_gateway(workdir, upstream_port, url, extra, source=source)
            processes.append(process)
            wait_until_up(f"http://127.0.0.1:{ports[name]}/healthz", timeout=120)
        key = limited_key(ports["traffic"])
        for port in ports.values():  # warm-up
            wrk_unique(f"http://127.0.0.1:{port}/v1/chat/completions", 8, 3, key=key)
        results: dict[tuple[str, int | str], list[float]] = {
            (name, load): [] for name in ports for load in (*CONNECTIONS, "hit")}
        for round_ in range(args.rounds):
            for name in list(ports) if round_ % 2 == 0 else list(reversed(ports)):
                chat = f"http://127.0.0.1:{ports[name]}/v1/chat/completions"
                for connections in CONNECTIONS:
                    out = wrk_unique(chat, connections, args.seconds, key=key)
                    results[(name, connections)].append(out["rps"] if connections > 1 else out["p50_ms"])
                results[(name, "hit")].append(wrk(chat, 1, args.seconds, body=HIT_BODY, key=key)["p50_ms"])
    finally:
        forget(url)
        for process in processes:
            process.terminate()
            process.wait()
    for load in (*CONNECTIONS, "hit"):
        off, on = results[("traffic", load)], results[("polled", load)]
        what = "p50 ms" if load in (1, "hit") else "RPS"
        rounds = "  ".join(f"{a:.3f}/{b:.3f}" for a, b in zip(off, on))
        change = (statistics.median(on) / statistics.median(off) - 1) * 100
        median, low, high = paired_change(off, on)
        print(f"c={load:<4} {what:7} off {statistics.median(off):9.3f}  polled {statistics.median(on):9.3f}  "
              f"({change:+.1f}%; paired {median:+.1%}, rounds {low:+.1%}..{high:+.1%})   rounds off/polled: {rounds}")


if __name__ == "__main__":
    main()
