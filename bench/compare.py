"""A/B two checkouts of Junction on the same machine at the same time, for before/after numbers.

    python bench/compare.py --base /tmp/junction-before [--new .] [--rounds 6] [--seconds 8]
    python bench/compare.py --base . --new-config '[middleware.metrics]|enabled = false'   # a config A/B

Each checkout needs its own ``.venv`` (``pip install -e .``). Both gateways run at once (one
Granian worker each, pinned to CPU 0) in front of one fixed upstream; wrk (CPU 1) alternates
between them round by round, ABBA, so drift of a shared host falls on both alike. Prints the
median and every round of RPS at 32 connections and p50/p99 latency at one.
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


def start_gateway(root: Path, upstream_port: int, extra: str = "") -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    workdir = Path(tempfile.mkdtemp(prefix="junction-compare-"))
    (workdir / "junction.toml").write_text(
        f'[providers.openai]\napi_key = "sk-upstream"\nbase_url = "http://127.0.0.1:{upstream_port}/v1"\n'
        + extra.replace("|", "\n") + "\n")
    python = root / ".venv" / "bin" / "python"
    process = subprocess.Popen(pinned(0, [str(python), "-m", "app.cli", "serve", "--config", "junction.toml",
                                          "--port", str(port), "--workers", "1"]),
                               cwd=workdir, env={**os.environ, "JUNCTION_MASTER_KEY": KEY}, stderr=subprocess.DEVNULL)
    return process, port


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base", type=Path, required=True)
    parser.add_argument("--new", type=Path, default=HERE.parent)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--base-config", default="", help="TOML added to the base's config ('|' for newlines)")
    parser.add_argument("--new-config", default="", help="TOML added to the new side's config")
    args = parser.parse_args()
    upstream_port = free_port()
    processes = [subprocess.Popen(pinned(1, [sys.executable, str(HERE / "upstream.py"), "--port", str(upstream_port)]))]
    ports: dict[str, int] = {}
    try:
        for name, root in (("base", args.base), ("new", args.new)):
            extra = args.base_config if name == "base" else args.new_config
            process, ports[name] = start_gateway(root.resolve(), upstream_port, extra)
            processes.append(process)
        for port in ports.values():
            wait_until_up(f"http://127.0.0.1:{port}/healthz")
            wrk(f"http://127.0.0.1:{port}/v1/chat/completions", 8, 3)  # warm-up
        results = {name: {"rps_32": [], "p50_ms": [], "p99_ms": []} for name in ports}
        for round_ in range(args.rounds):
            for name in ("base", "new") if round_ % 2 == 0 else ("new", "base"):
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
        base, new = (statistics.median(results[name][metric]) for name in ("base", "new"))
        rounds = "  ".join(f"{b:.3f}/{n:.3f}" for b, n in zip(results["base"][metric], results["new"][metric]))
        print(f"{metric:7} base {base:9.3f}  new {new:9.3f}  ({(new - base) / base:+.1%})   rounds base/new: {rounds}")


if __name__ == "__main__":
    main()
