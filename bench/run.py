"""Junction's gateway benchmark. See bench/README.md.

    python bench/run.py [--duration 10] [--chunks 200]

Starts the fixed-response upstream (bench/upstream.py) and ``junction serve`` with one Granian
worker pinned to CPU 0, drives load with wrk pinned to CPU 1, and prints RPS at 32 connections,
p50/p99 latency at one connection, streaming throughput and time-to-first-byte, each through
Junction and directly against the upstream.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from checkout import site_folder

HERE = Path(__file__).resolve().parent
KEY = "sk-bench"
UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def free_port() -> int:
    """A free local port; inside ``JUNCTION_BENCH_PORTS`` (``low-high``) when set, so benches run
    side by side on a shared host stay in the range each was given."""
    import socket

    span = os.environ.get("JUNCTION_BENCH_PORTS")
    candidates = [0]
    if span:
        low, _, high = span.partition("-")
        candidates = list(range(int(low), int(high) + 1))
        random.shuffle(candidates)
    for port in candidates:
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue  # taken
            return sock.getsockname()[1]
    raise RuntimeError(f"no free port in JUNCTION_BENCH_PORTS={span}")


def pinned(cpu: int, command: list[str]) -> list[str]:
    return ["taskset", "-c", str(cpu), *command] if shutil.which("taskset") and os.cpu_count() > 1 else command


def interpreter(source: Path) -> tuple[str, dict[str, str]]:
    """The Python that runs ``source``'s Junction, and its environment. This checkout is installed
    editable (``junction`` maps to its ``app/``), so ``PYTHONPATH`` alone would run this checkout's
    code under the other's name. A checkout runs by its own virtualenv when it has one; else this
    checkout by this Python, and another by this Python with its code mapped in (bench/checkout.py)."""
    own = source / ".venv" / "bin" / "python"
    if own.exists():
        return str(own), dict(os.environ)
    if source.resolve() == HERE.parent.resolve():
        return sys.executable, dict(os.environ)
    return sys.executable, {**os.environ, "PYTHONPATH": str(site_folder(source))}


def wait_until_up(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except Exception:  # not up yet: connection refused, 404 from a bare upstream, ...
            if "404" in str(sys.exc_info()[1]):
                return
            time.sleep(0.1)
    raise SystemExit(f"{url} did not come up")


def wrk(url: str, connections: int, duration: int, body: str | None = None, key: str = KEY) -> dict[str, float]:
    env = {**os.environ, "BENCH_KEY": key}
    if body:
        env["BENCH_BODY"] = body
    command = pinned(1, ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency", "-s",
                         str(HERE / "chat.lua"), url])
    output = subprocess.run(command, capture_output=True, text=True, env=env, check=True).stdout
    result = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),
              "requests": float(re.search(r"(\d+) requests in", output).group(1))}
    for percentile in ("50", "99"):
        value, unit = re.search(rf"\s{percentile}%\s+([\d.]+)(us|ms|s)", output).groups()
        result[f"p{percentile}_ms"] = float(value) * UNITS[unit]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if errors:
        raise SystemExit(f"wrk saw {errors.group(1)} error responses from {url}:\n{output}")
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--chunks", type=int, default=200, help="SSE chunks per streamed answer")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is needed: apt-get install wrk")

    upstream_port, junction_port = free_port(), free_port()
    workdir = Path(tempfile.mkdtemp(prefix="junction-bench-"))
    (workdir / "junction.toml").write_text(
        f'[providers.openai]\napi_key = "sk-upstream"\nbase_url = "http://127.0.0.1:{upstream_port}/v1"\n')
    env = {**os.environ, "JUNCTION_MASTER_KEY": KEY}
    processes = [
        subprocess.Popen(pinned(1, [sys.executable, str(HERE / "upstream.py"), "--port", str(upstream_port),
                                    "--chunks", str(args.chunks)])),
        subprocess.Popen(pinned(0, [sys.executable, "-m", "junction.cli", "serve", "--config", "junction.toml",
                                    "--port", str(junction_port), "--workers", "1"]),
                         cwd=workdir, env=env, stderr=subprocess.DEVNULL),
    ]
    try:
        direct = f"http://127.0.0.1:{upstream_port}/v1/chat/completions"
        gateway = f"http://127.0.0.1:{junction_port}/v1/chat/completions"
        wait_until_up(f"http://127.0.0.1:{junction_port}/healthz")
        wait_until_up(f"http://127.0.0.1:{upstream_port}/")
        wrk(gateway, 8, 2)  # warm-up
        stream_body = '{"model":"openai/gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"Hello!"}]}'
        results = {}
        for name, url in (("direct", direct), ("junction", gateway)):
            results[name] = {
                "rps_32": wrk(url, 32, args.duration)["rps"],
                **{k: v for k, v in wrk(url, 1, args.duration).items() if k != "rps"},
                "stream_rps_32": wrk(url, 32, args.duration, stream_body)["rps"],
            }
            ttfb = subprocess.run(pinned(1, [sys.executable, str(HERE / "ttfb.py"), url, "--key", KEY]),
                                  capture_output=True, text=True, check=True).stdout
            results[name].update(json.loads(ttfb))
            results[name]["stream_chunks_per_s"] = results[name]["stream_rps_32"] * args.chunks
    finally:
        for process in processes:
            process.terminate()
            process.wait()
    report(results, args.chunks)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


def report(results: dict[str, dict[str, float]], chunks: int) -> None:
    d, j = results["direct"], results["junction"]
    rows = [
        ("non-streaming RPS @32 connections", f"{d['rps_32']:.0f}", f"{j['rps_32']:.0f}", ""),
        ("p50 latency @1 connection (ms)", f"{d['p50_ms']:.3f}", f"{j['p50_ms']:.3f}", f"+{j['p50_ms'] - d['p50_ms']:.3f} ms"),
        ("p99 latency @1 connection (ms)", f"{d['p99_ms']:.3f}", f"{j['p99_ms']:.3f}", f"+{j['p99_ms'] - d['p99_ms']:.3f} ms"),
        (f"streaming RPS @32 ({chunks} chunks each)", f"{d['stream_rps_32']:.0f}", f"{j['stream_rps_32']:.0f}", ""),
        ("streamed chunks/s @32", f"{d['stream_chunks_per_s']:.0f}", f"{j['stream_chunks_per_s']:.0f}", ""),
        ("stream TTFB p50 @1 (ms)", f"{d['ttfb_p50_ms']:.3f}", f"{j['ttfb_p50_ms']:.3f}", f"+{j['ttfb_p50_ms'] - d['ttfb_p50_ms']:.3f} ms"),
        ("stream total p50 @1 (ms)", f"{d['total_p50_ms']:.3f}", f"{j['total_p50_ms']:.3f}", ""),
    ]
    print(f"{'':42} {'direct':>10} {'junction':>10}  overhead")
    for label, direct, junction, overhead in rows:
        print(f"{label:42} {direct:>10} {junction:>10}  {overhead}")


if __name__ == "__main__":
    main()
