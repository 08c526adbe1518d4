"""Server time of the console's overview page (``GET /ui``) on a large usage ledger.

    python bench/ledger_analytics.py --events 10000000 --keep      # prints "kept database NAME"
    python bench/console_overview.py --metrics postgresql+asyncpg://postgres@127.0.0.1:5432/NAME [--runs 30]

Starts ``junction serve`` with ``[stores] metrics`` on that database (the seeded events end at the
current hour, so "today" and "yesterday" both hold events), signs in with the master key and
times the overview over loopback (an upper bound of the server time: the page is a few KB).
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from junction.testing.server import JunctionProcess  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--metrics", required=True, help="the seeded ledger's SQLAlchemy URL")
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    config = f'[stores]\nmetrics = "{args.metrics}"\n'
    with tempfile.TemporaryDirectory() as directory, JunctionProcess(Path(directory), config) as server:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/ui/login").text)
            assert token is not None
            assert client.post("/ui/login", data={"key": server.key, "csrf_token": token.group(1)}).status_code == 303
            timings = []
            for _ in range(args.runs + 2):
                began = time.perf_counter()
                page = client.get("/ui")
                timings.append((time.perf_counter() - began) * 1000)
                assert page.status_code == 200, page.text[:500]
            timings = sorted(timings[2:])  # two warm-up runs
            requests = re.search(r"<th scope=\"row\">Requests</th><td>([^<]+)</td><td>([^<]+)</td>", page.text)
            p95 = timings[min(len(timings) - 1, int(round(0.95 * len(timings))) - 1)]
            print(f"GET /ui over {args.runs} runs: p50 {statistics.median(timings):.1f} ms, p95 {p95:.1f} ms, "
                  f"max {timings[-1]:.1f} ms (requests today/yesterday: "
                  f"{requests.group(1) if requests else '?'} / {requests.group(2) if requests else '?'})")


if __name__ == "__main__":
    main()
