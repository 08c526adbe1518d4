"""The response cache's cost and benefit: the plain path, a cache miss and a cache hit, side by
side, in one run.

    python bench/cache.py [--rounds 3] [--seconds 6] [--redis redis://127.0.0.1:6379/4] [--base DIR]

Two gateways run at once in front of one fixed upstream (bench/upstream.py), each one Granian
worker pinned to CPU 0: *plain* (no response cache) and *cached* (``response-cache`` on, Redis).
wrk (CPU 1) alternates between them round by round, so drift of a shared host falls on all alike:

* plain — the same small chat completion each time, through the plain gateway;
* miss — a chat completion never asked before each time (bench/unique.lua: lookup, upstream
  call, store), through the cached gateway;
* hit — the same chat completion each time, through the cached gateway (answered from Redis).

Prints the median of the rounds: RPS at 32 connections and p50 latency at one connection. The
entries written expire after 30 s (``x-junction-cache-ttl``), under a random key prefix.
``--base DIR`` adds a third gateway with the cache on, served from another checkout (bench/run.py's
``interpreter``), and its miss and hit rows, for a before/after in the same run.
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from run import HERE, KEY, free_port, interpreter, pinned, wait_until_up, wrk

HIT_BODY = '{"model":"openai/gpt-4o-mini","messages":[{"role":"user","content":"Hello, cache!"}]}'


def start_gateway(config: str, source: Path | None = None) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    workdir = Path(tempfile.mkdtemp(prefix="junction-bench-cache-"))
    (workdir / "junction.toml").write_text(config)
    python, env = interpreter(source) if source is not None else (sys.executable, dict(os.environ))
    process = subprocess.Popen(pinned(0, [python, "-m", "junction.cli", "serve", "--config", "junction.toml",
                                          "--port", str(port), "--workers", "1"]),
                               cwd=workdir, stderr=subprocess.DEVNULL, env={**env, "JUNCTION_MASTER_KEY": KEY})
    return process, port


def wrk_unique(url: str, connections: int, seconds: int, key: str = KEY) -> dict[str, float]:
    """wrk with bench/unique.lua instead of chat.lua: every request a miss."""
    import run

    original = run.HERE
    scripts = Path(tempfile.mkdtemp(prefix="junction-bench-lua-"))
    (scripts / "chat.lua").write_text((HERE / "unique.lua").read_text())
    run.HERE = scripts
    try:
        return wrk(url, connections, seconds, key=key)
    finally:
        run.HERE = original


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=6)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/4")
    parser.add_argument("--base", type=Path, help="also serve the cache from this checkout (before/after)")
    args = parser.parse_args()
    upstream_port = free_port()
    base = (f'[providers.openai]\napi_key = "sk-upstream"\nbase_url = "http://127.0.0.1:{upstream_port}/v1"\n'
            f'[stores]\ncache = "{args.redis}"\n')
    cached = base + (f'[middleware.response-cache]\nenabled = true\n'
                     f'key_prefix = "bench-{secrets.token_hex(4)}:"\n')
    processes = [subprocess.Popen(pinned(1, [sys.executable, str(HERE / "upstream.py"), "--port", str(upstream_port)]))]
    try:
        plain_process, plain_port = start_gateway(base)
        cached_process, cached_port = start_gateway(cached)
        processes += [plain_process, cached_process]
        gateways = [("plain", plain_port), ("cached", cached_port)]
        if args.base is not None:
            base_process, base_port = start_gateway(cached, args.base)
            processes.append(base_process)
            gateways.append(("base", base_port))
        urls = {name: f"http://127.0.0.1:{port}/v1/chat/completions" for name, port in gateways}
        for _, port in gateways:
            wait_until_up(f"http://127.0.0.1:{port}/healthz", timeout=120)
        runs = {
            "plain": lambda c, s: wrk(urls["plain"], c, s),
            "miss": lambda c, s: wrk_unique(urls["cached"], c, s),
            "hit": lambda c, s: wrk(urls["cached"], c, s, HIT_BODY),
        }
        if args.base is not None:
            runs["base-miss"] = lambda c, s: wrk_unique(urls["base"], c, s)
            runs["base-hit"] = lambda c, s: wrk(urls["base"], c, s, HIT_BODY)
        for run_ in runs.values():
            run_(8, 2)  # warm-up (and the hit's entry)
        results = {name: {"rps_32": [], "p50_ms": []} for name in runs}
        for round_ in range(args.rounds):
            names = list(runs) if round_ % 2 == 0 else list(reversed(runs))
            for name in names:
                results[name]["p50_ms"].append(runs[name](1, args.seconds)["p50_ms"])
                results[name]["rps_32"].append(runs[name](32, args.seconds)["rps"])
    finally:
        for process in processes:
            process.terminate()
            process.wait()
    plain_p50 = statistics.median(results["plain"]["p50_ms"])
    plain_rps = statistics.median(results["plain"]["rps_32"])
    print(f"{'':8} {'p50 @1 (ms)':>12} {'vs plain':>10} {'RPS @32':>9} {'vs plain':>9}   rounds (p50 / RPS)")
    for name, values in results.items():
        p50, rps = statistics.median(values["p50_ms"]), statistics.median(values["rps_32"])
        rounds = ", ".join(f"{p:.3f}/{r:.0f}" for p, r in zip(values["p50_ms"], values["rps_32"], strict=True))
        print(f"{name:8} {p50:12.3f} {p50 - plain_p50:+10.3f} {rps:9.0f} {rps / plain_rps:9.0%}   {rounds}")


if __name__ == "__main__":
    main()
