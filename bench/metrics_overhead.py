"""What the ``metrics`` plugin (usage ledger rows, Prometheus samples, Server-Timing) costs a
request: two gateways of this checkout, one with it on and one with it off, run at once in front
of one fixed upstream; wrk alternates between them round by round (ABBA), as bench/compare.py.

    python bench/metrics_overhead.py [--rounds 6] [--seconds 8] [--workers 1]

The ledger is the embedded SQLite default; both gateways keep the access log as configured by
``--access-log`` (on by default, as shipped).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from run import HERE, KEY, free_port, pinned, wait_until_up, wrk


def start_gateway(upstream_port: int, extra: str, workers: int) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    workdir = Path(tempfile.mkdtemp(prefix="junction-metrics-bench-"))
    (workdir / "junction.toml").write_text(
        f'[providers.openai]\napi_key = "sk-upstream"\nbase_url = "http://127.0.0.1:{upstream_port}/v1"\n{extra}')
    process = subprocess.Popen(pinned(0, [sys.executable, "-m", "app.cli", "serve", "--config", "junction.toml",
                                          "--port", str(port), "--workers", str(workers)]),
                               cwd=workdir, env={**os.environ, "JUNCTION_MASTER_KEY": KEY},
                               stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    return process, port


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--access-log", choices=("on", "off"), default="on")
    parser.add_argument("--on", default="", help="extra [middleware.metrics] lines of the 'on' gateway, "
                                                  "e.g. 'prometheus = false' to measure the ledger alone")
    args = parser.parse_args()
    logging = f'[logging]\nformat = "json"\naccess_log = {"true" if args.access_log == "on" else "false"}\n'
    configs = {"off": logging + "[middleware.metrics]\nenabled = false\n",
               "on": logging + "[middleware.metrics]\n" + args.on.replace(";", "\n") + "\n"}
    upstream_port = free_port()
    processes = [subprocess.Popen(pinned(1, [sys.executable, str(HERE / "upstream.py"), "--port", str(upstream_port)]))]
    ports: dict[str, int] = {}
    try:
        for name, extra in configs.items():
            process, ports[name] = start_gateway(upstream_port, extra, args.workers)
            processes.append(process)
        for port in ports.values():
            wait_until_up(f"http://127.0.0.1:{port}/healthz", timeout=120)
            wrk(f"http://127.0.0.1:{port}/v1/chat/completions", 8, 3)  # warm-up
        results = {name: {"rps_32": [], "p50_ms": [], "p99_ms": []} for name in ports}
        for round_ in range(args.rounds):
            for name in ("off", "on") if round_ % 2 == 0 else ("on", "off"):
                url = f"http://127.0.0.1:{ports[name]}/v1/chat/completions"
                one = wrk(url, 1, args.seconds)
                results[name]["p50_ms"].append(one["p50_ms"])
                results[name]["p99_ms"].append(one["p99_ms"])
                results[name]["rps_32"].append(wrk(url, 32, args.seconds)["rps"])
    finally:
        for process in processes:
            process.terminate()
            process.wait()
    for metric in ("rps_32", "p50_ms", "p99_ms"):
        off, on = (statistics.median(results[name][metric]) for name in ("off", "on"))
        rounds = "  ".join(f"{a:.3f}/{b:.3f}" for a, b in zip(results["off"][metric], results["on"][metric]))
        print(f"{metric:7} metrics off {off:9.3f}  on {on:9.3f}  ({(on - off) / off:+.1%})   rounds off/on: {rounds}")


if __name__ == "__main__":
    main()
