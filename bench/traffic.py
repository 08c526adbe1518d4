"""Rate limits and budgets on (against Redis) vs the same gateway with them off, A/B at once.

    python bench/traffic.py [--rounds 6] [--seconds 8] [--redis redis://127.0.0.1:6379/3] [--base DIR] [--unix]

Both gateways run from this checkout, one Granian worker each pinned to CPU 0, in front of one
fixed upstream, sharing one SQLite documents file so one API key works on both. The key and its
org carry rpm, tpm and a daily budget high enough never to refuse, so every call on the
"traffic" gateway checks four windows (key and org, requests and tokens) and two budgets in one
pipelined Redis round trip before the call, and settles both after it. wrk (CPU 1) alternates
between the two round by round, ABBA. Prints the medians and every round of RPS at 32
connections and p50/p99 latency at one, and the ratios the issue targets (>= 70% of the plain
RPS, <= +0.25 ms on the c=1 p50), and the private Redis's CPU per request at 32 connections: what
the shared store spends on each call, so what one Redis core can carry for every node together.

``--cache`` turns the response cache on too (Redis) and makes every request one never asked
before (bench/unique.lua), so each traffic call is a miss: admission, lookup and lock in one
round trip, the upstream call, then the store and the settles queued for later round trips. Each
round then also measures the c=1 p50 of one request repeated (cache hits, limits still checked),
printed beside the plain and miss p50s.

``--base DIR`` adds a third gateway, "base": the same traffic config served from another checkout
of Junction (run by that checkout's own ``.venv``, or without one by this Python mapped to its
code: bench/run.py's ``interpreter``), for a before/after of a change in the same run,
also printed paired round by round (each round's change, and how many rounds the change was ahead).

``--floor`` adds a gateway whose only plugin sends one bare ``PING`` per call on the store batch
(bench/round_trip_floor.py, installed as a third-party plugin): what the round trip itself costs
on this host, the floor under any plugin that checks shared state before the call.

``--poll-us N`` adds a gateway, "polled": the traffic config with ``[server] redis_reply_poll_us =
N`` (a worker serving one request polls for its Redis reply, for at most N µs, before its loop
sleeps; the other gateways have the default, 300; 0 turns it off). bench/reply_poll.py measures
it at 1 to 8 connections.

``--c1-only`` skips the 32-connection runs, for many short rounds of the c=1 p50s alone (e.g.
``--rounds 24 --seconds 1 --base DIR``): the host's drift is slow next to a round, so changes of a
few tens of µs show paired that one long round per side hides.

``--unix``: the gateways reach that private ``redis-server`` through its Unix socket instead of
loopback TCP (where Redis runs on the gateway's host; it measured no better than TCP here).

By default the bench starts its own ``redis-server`` (pinned to CPU 1, with wrk and the upstream),
so other users of a shared Redis do not skew the numbers; ``--redis URL`` uses that one instead
(its keys with the prefix ``bench:`` are deleted before and after).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import redis
import round_trip_floor
from cache import wrk_unique
from compare import paired_change, tree_cpu_seconds
from run import HERE, KEY, free_port, interpreter, pinned, wait_until_up, wrk

# Store timeouts far above any round trip of a loaded host: a guard that opened (fail open, no
# Redis at all) would make the traffic side look free.
TRAFFIC = """
[middleware.rate-limit]
enabled = true
prefix = "bench:rl"
store_timeout_seconds = 10.0

[middleware.budget]
enabled = true
prefix = "bench:budget"
store_timeout_seconds = 10.0
"""
#: The request the hit rows repeat (answered from the cache after the first time).
HIT_BODY = '{"model":"openai/gpt-4o-mini","messages":[{"role":"user","content":"Hello, traffic cache!"}]}'
CACHE = """
[middleware.response-cache]
enabled = true
key_prefix = "bench:cache:"
store_timeout_seconds = 10.0
"""


def start_gateway(workdir: Path, upstream_port: int, cache: str, extra: str,
                  source: Path | None = None, plugins: Path | None = None) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    config = workdir / f"junction-{port}.toml"
    config.write_text(
        f'[providers.openai]\napi_key = "sk-upstream"\nbase_url = "http://127.0.0.1:{upstream_port}/v1"\n'
        f'[stores]\ndocuments = "sqlite+aiosqlite:///{workdir}/documents.db"\ncache = "{cache}"\n' + extra)
    python, env = interpreter(source) if source is not None else (sys.executable, dict(os.environ))
    if plugins is not None:  # a folder of third-party plugins (bench/round_trip_floor.py's)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, (str(plugins), env.get("PYTHONPATH"))))
    process = subprocess.Popen(pinned(0, [python, "-m", "junction.cli", "serve", "--config", str(config),
                                          "--port", str(port), "--workers", "1"]),
                               cwd=workdir, stderr=subprocess.DEVNULL, env={**env, "JUNCTION_MASTER_KEY": KEY})
    return process, port


def admin(port: int, path: str, body: dict) -> dict:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode(), method="POST",
                                     headers={"authorization": f"Bearer {KEY}", "content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def limited_key(port: int) -> str:
    limits = {"rpm": 2_000_000_000, "tpm": 2_000_000_000, "budget_usd": 1e6, "budget_period": "day"}
    org = admin(port, "/api/v1/admin/orgs", {"name": "bench", **limits})
    return admin(port, "/api/v1/admin/keys", {"org_id": org["id"], "name": "bench", **limits})["key"]


def forget(url: str) -> None:
    client = redis.Redis.from_url(url)
    for key in client.scan_iter("bench:*", count=1000):
        client.delete(key)
    client.close()


def wait_for_redis(url: str) -> None:
    client = redis.Redis.from_url(url)
    for _ in range(100):
        try:
            client.ping()
            return
        except redis.ConnectionError:
            time.sleep(0.05)
    raise SystemExit(f"{url} did not come up")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--redis", help="use this Redis (e.g. redis://127.0.0.1:6379/3) instead of a private "
                        "redis-server pinned to CPU 1 beside the upstream and wrk")
    parser.add_argument("--cache", action="store_true", help="the response cache on too, every request a miss")
    parser.add_argument("--base", type=Path, help="also serve the traffic config from this checkout (before/after)")
    parser.add_argument("--unix", action="store_true", help="the gateways reach the private redis-server through "
                        "its Unix socket (unix://...) instead of TCP on 127.0.0.1")
    parser.add_argument("--floor", action="store_true", help="also serve a gateway whose only plugin sends one "
                        "bare PING per call on the store batch (bench/round_trip_floor.py): the cost of the round "
                        "trip itself on this host")
    parser.add_argument("--c1-only", action="store_true", help="skip the 32-connection runs: only the c=1 p50s "
                        "(miss, and with --cache hit), for many short paired rounds")
    parser.add_argument("--poll-us", type=int, default=None, help="also serve the traffic config with [server] "
                        "redis_reply_poll_us = N, as the side 'polled' (the default is 300; 0: off)")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="junction-traffic-"))
    upstream_port = free_port()
    processes = [subprocess.Popen(pinned(1, [sys.executable, str(HERE / "upstream.py"), "--port", str(upstream_port)]))]
    #: The private redis-server's pid, whose CPU per request each side is charged (the shared
    #: store's cost: what one Redis core can serve for every node); none with ``--redis``.
    redis_pid: int | None = None
    if args.redis is None:
        redis_port = free_port()
        socket = workdir / "redis.sock"
        redis_server = subprocess.Popen(pinned(1, ["redis-server", "--port", str(redis_port), "--save", "",
                                                     "--appendonly", "no", "--dir", str(workdir),
                                                     "--unixsocket", str(socket), "--unixsocketperm", "700"]),
                                        stdout=subprocess.DEVNULL)
        processes.append(redis_server)
        redis_pid = redis_server.pid
        args.redis = f"unix://{socket}?db=0" if args.unix else f"redis://127.0.0.1:{redis_port}/0"
        wait_for_redis(args.redis)
    forget(args.redis)
    ports: dict[str, int] = {}
    try:
        traffic = TRAFFIC + (CACHE if args.cache else "")
        sides: list[tuple[str, str, str, Path | None]] = [("plain", "memory://", "", None),
                                                          ("traffic", args.redis, traffic, None)]
        plugins = round_trip_floor.install(workdir / "plugins") if args.floor else None
        if args.floor:
            sides.insert(1, ("floor", args.redis, round_trip_floor.CONFIG, None))
        if args.poll_us is not None:
            sides.append(("polled", args.redis, traffic + f"\n[server]\nredis_reply_poll_us = {args.poll_us}\n", None))
        if args.base is not None:
            # First: the shared documents file is then made at the base's schema, and this
            # checkout's newer migrations move it forward (an older checkout cannot open a newer one).
            sides.insert(0, ("base", args.redis, traffic, args.base))
        for name, cache, extra, source in sides:
            process, ports[name] = start_gateway(workdir, upstream_port, cache, extra, source,
                                                 plugins if name == "floor" else None)
            processes.append(process)
            wait_until_up(f"http://127.0.0.1:{ports[name]}/healthz", timeout=120)  # a loaded host starts slowly
        key = limited_key(ports["traffic"])
        load = wrk_unique if args.cache else wrk
        for port in ports.values():
            load(f"http://127.0.0.1:{port}/v1/chat/completions", 8, 3, key=key)  # warm-up (key caches, pools)
        results = {name: {"rps_32": [], "p50_ms": [], "p99_ms": [], "cpu_us": [], "redis_us": [], "hit_p50_ms": []}
                   for name in ports}
        pids = {name: process.pid for name, process in zip(ports, processes[-len(ports):])}

        def at_32(name: str, url: str, into: dict[str, list[float]]) -> None:
            cpu = tree_cpu_seconds(pids[name])
            redis_cpu = tree_cpu_seconds(redis_pid) if redis_pid else 0.0
            rps = load(url, 32, args.seconds, key=key)["rps"]
            if not rps:
                raise SystemExit(f"{name} answered nothing in {args.seconds} s at 32 connections")
            into["rps_32"].append(rps)
            # The gateway's CPU per request at 32 connections: steadier than RPS on a shared host.
            into["cpu_us"].append((tree_cpu_seconds(pids[name]) - cpu) / (rps * args.seconds) * 1e6)
            if redis_pid:
                into["redis_us"].append((tree_cpu_seconds(redis_pid) - redis_cpu) / (rps * args.seconds) * 1e6)
        for round_ in range(args.rounds):
            for name in list(ports) if round_ % 2 == 0 else list(reversed(ports)):
                url = f"http://127.0.0.1:{ports[name]}/v1/chat/completions"
                one = load(url, 1, args.seconds, key=key)
                results[name]["p50_ms"].append(one["p50_ms"])
                results[name]["p99_ms"].append(one["p99_ms"])
                if not args.c1_only:
                    at_32(name, url, results[name])
                if args.cache and name not in ("plain", "floor"):  # the same request again and again: cache hits
                    hits = wrk(url, 1, args.seconds, body=HIT_BODY, key=key)
                    results[name]["hit_p50_ms"].append(hits["p50_ms"])
    finally:
        forget(args.redis)
        for process in processes:
            process.terminate()
            process.wait()
    medians = {name: {metric: statistics.median(values) if values else 0.0 for metric, values in metrics.items()}
               for name, metrics in results.items()}
    load = os.getloadavg()
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    for other in [name for name in ports if name != "plain"]:
        for metric in ("rps_32", "p50_ms", "p99_ms", "cpu_us"):
            if not results["plain"][metric]:  # --c1-only: no 32-connection runs
                continue
            plain, traffic = medians["plain"][metric], medians[other][metric]
            rounds = "  ".join(f"{p:.3f}/{t:.3f}" for p, t in zip(results["plain"][metric], results[other][metric]))
            print(f"{metric:7} plain {plain:9.3f}  {other} {traffic:9.3f}  ({(traffic - plain) / plain:+.1%})"
                  f"   rounds plain/{other}: {rounds}")
        added = medians[other]["p50_ms"] - medians["plain"]["p50_ms"]
        if args.c1_only:
            print(f"{other} c=1 p50 {added:+.3f} ms (target <= +0.25 ms)")
        else:
            ratio = medians[other]["rps_32"] / medians["plain"]["rps_32"]
            print(f"{other} RPS = {ratio:.1%} of plain (target >= 70%); c=1 p50 {added:+.3f} ms (target <= +0.25 ms); "
                  f"CPU {medians[other]['cpu_us'] - medians['plain']['cpu_us']:+.1f} us/request")
        if redis_pid and not args.c1_only:
            print(f"{other} Redis CPU {medians[other]['redis_us']:.1f} us/request (rounds: "
                  + "  ".join(f"{value:.1f}" for value in results[other]["redis_us"]) + ")")
        if args.cache and other != "floor":
            hit = medians[other]["hit_p50_ms"]
            print(f"{other} c=1 p50: plain {medians['plain']['p50_ms']:.3f} ms, "
                  f"miss {medians[other]['p50_ms']:.3f} ms, hit {hit:.3f} ms (target: hit < plain)   hit rounds: "
                  + "  ".join(f"{value:.3f}" for value in results[other]["hit_p50_ms"]))
    if "base" in results:
        # Before/after paired round by round: both ran back to back in each round, so a round's
        # change is free of the host's drift between rounds (which moved one side's own medians
        # by more than most changes here).
        print("traffic against base, paired round by round (median, lowest..highest; rounds traffic ahead):")
        for metric, better in (("rps_32", 1), ("cpu_us", -1), ("p50_ms", -1), ("hit_p50_ms", -1)):
            before, after = results["base"][metric], results["traffic"][metric]
            if not before:
                continue
            median, low, high = paired_change(before, after)
            ahead = sum(1 for b, a in zip(before, after, strict=True) if (a - b) * better > 0)
            print(f"  {metric:10} {median:+.1%} ({low:+.1%}..{high:+.1%}; {ahead} of {len(before)})")


if __name__ == "__main__":
    main()
