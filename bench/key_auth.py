"""What authenticating with an issued API key costs over the master key, end to end.

    python bench/key_auth.py [--duration 5] [--rounds 3]

Starts the fixed-response upstream and ``junction serve`` (one worker, embedded SQLite store),
issues an org key through the admin API, then measures p50 latency at one connection with wrk for
the master key and for the API key, alternating, and prints both and the difference. The issue's
budget: ≤ 0.1 ms p50.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import HERE, KEY, free_port, pinned, wait_until_up  # noqa: E402


def post(url: str, body: dict, key: str) -> dict:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"authorization": f"Bearer {key}", "content-type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def _wrk_with_key(url: str, key: str, duration: int) -> float:
    import re

    from run import UNITS

    command = pinned(
        1, ["wrk", "-t1", "-c1", f"-d{duration}s", "--latency", "-s", str(HERE / "chat.lua"), url]
    )
    output = subprocess.run(
        command, capture_output=True, text=True, check=True, env={**os.environ, "BENCH_KEY": key}
    ).stdout
    if "Non-2xx" in output:
        raise SystemExit(f"wrk saw error responses:\n{output}")
    value, unit = re.search(r"\s50%\s+([\d.]+)(us|ms|s)", output).groups()
    return float(value) * UNITS[unit]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    upstream_port, junction_port = free_port(), free_port()
    workdir = Path(tempfile.mkdtemp(prefix="junction-keybench-"))
    (workdir / "junction.toml").write_text(
        f'[providers.openai]\napi_key = "sk-upstream"\nbase_url = "http://127.0.0.1:{upstream_port}/v1"\n'
    )
    env = {**os.environ, "JUNCTION_MASTER_KEY": KEY}
    processes = [
        subprocess.Popen(
            pinned(1, [sys.executable, str(HERE / "upstream.py"), "--port", str(upstream_port)])
        ),
        subprocess.Popen(
            pinned(
                0,
                [
                    sys.executable,
                    "-m",
                    "junction.cli",
                    "serve",
                    "--config",
                    "junction.toml",
                    "--port",
                    str(junction_port),
                    "--workers",
                    "1",
                ],
            ),
            cwd=workdir,
            env=env,
            stderr=subprocess.DEVNULL,
        ),
    ]
    try:
        base = f"http://127.0.0.1:{junction_port}"
        wait_until_up(f"{base}/healthz")
        wait_until_up(f"http://127.0.0.1:{upstream_port}/")
        org = post(f"{base}/api/v1/admin/orgs", {"name": "bench"}, KEY)
        api_key = post(f"{base}/api/v1/admin/keys", {"org_id": org["id"], "name": "bench"}, KEY)["key"]
        url = f"{base}/v1/chat/completions"
        _wrk_with_key(url, KEY, 2)  # warm-up
        _wrk_with_key(url, api_key, 2)
        master, keyed = [], []
        for _ in range(args.rounds):
            master.append(_wrk_with_key(url, KEY, args.duration))
            keyed.append(_wrk_with_key(url, api_key, args.duration))
    finally:
        for process in processes:
            process.terminate()
            process.wait()
    m, k = statistics.median(master), statistics.median(keyed)
    print(
        f"p50 @1 connection, median of {args.rounds} rounds: master key {m:.3f} ms, API key {k:.3f} ms, "
        f"difference {k - m:+.3f} ms (budget +0.100 ms)"
    )
    print(f"rounds: master {master}, api key {keyed}")


if __name__ == "__main__":
    main()
