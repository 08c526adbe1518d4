"""Time to first byte and to the last byte of streamed chat completions, over one keep-alive
connection (`bench/run.py` reads its JSON, `bench/peers/peers.sh` its line).

    python bench/ttfb.py URL [--requests 300] [--key KEY] [--model MODEL] [--format json|line]
Prints JSON ``{"ttfb_p50_ms", "ttfb_p99_ms", "total_p50_ms", "chunks"}``, or with ``--format line``
``TTFB ttfb_p50_ms=… ttfb_p99_ms=… total_p50_ms=… events=…``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import time
from urllib.parse import urlsplit


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--key", default="sk-bench")
    parser.add_argument("--model", default="openai/gpt-4o-mini")
    parser.add_argument("--format", choices=("json", "line"), default="json")
    args = parser.parse_args()
    body = json.dumps({"model": args.model, "stream": True, "max_tokens": 32,
                       "messages": [{"role": "user", "content": "Say hello in one short sentence."}]}).encode()
    parts = urlsplit(args.url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port)
    headers = {"content-type": "application/json", "authorization": f"Bearer {args.key}"}
    first, total, chunks = [], [], 0
    for index in range(args.requests + 20):
        started = time.perf_counter()
        connection.request("POST", parts.path, body, headers)
        response = connection.getresponse()
        if response.status != 200:
            raise SystemExit(f"HTTP {response.status}: {response.read()[:300]!r}")
        line = response.readline()
        ttfb = time.perf_counter() - started
        answer = line + response.read()
        done = time.perf_counter() - started
        if index >= 20:  # warm-up excluded
            first.append(ttfb * 1000)
            total.append(done * 1000)
            chunks = answer.count(b"data:")
    p50, p99, total_p50 = statistics.median(first), statistics.quantiles(first, n=100)[98], statistics.median(total)
    if args.format == "line":
        print(f"TTFB ttfb_p50_ms={p50:.3f} ttfb_p99_ms={p99:.3f} total_p50_ms={total_p50:.3f} events={chunks}")
    else:
        print(json.dumps({"ttfb_p50_ms": round(p50, 3), "ttfb_p99_ms": round(p99, 3),
                          "total_p50_ms": round(total_p50, 3), "chunks": chunks}))


if __name__ == "__main__":
    main()
