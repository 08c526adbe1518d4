"""Time to first byte and to the last byte of streamed answers, over one keep-alive connection.

    python bench/ttfb.py URL [--requests 300] [--key KEY]
Prints JSON: {"ttfb_p50_ms", "ttfb_p99_ms", "total_p50_ms", "chunks"}.
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import time
from urllib.parse import urlsplit

BODY = json.dumps({"model": "openai/gpt-4o-mini", "stream": True,
                   "messages": [{"role": "user", "content": "Hello!"}]}).encode()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--key", default="sk-bench")
    args = parser.parse_args()
    parts = urlsplit(args.url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port)
    headers = {"content-type": "application/json", "authorization": f"Bearer {args.key}"}
    first, total, chunks = [], [], 0
    for index in range(args.requests + 20):
        started = time.perf_counter()
        connection.request("POST", parts.path, BODY, headers)
        response = connection.getresponse()
        line = response.readline()
        ttfb = time.perf_counter() - started
        body = line + response.read()
        done = time.perf_counter() - started
        if index >= 20:  # warm-up excluded
            first.append(ttfb * 1000)
            total.append(done * 1000)
            chunks = body.count(b"data: ")
    quantiles = statistics.quantiles(first, n=100)
    print(json.dumps({"ttfb_p50_ms": round(statistics.median(first), 3), "ttfb_p99_ms": round(quantiles[98], 3),
                      "total_p50_ms": round(statistics.median(total), 3), "chunks": chunks}))


if __name__ == "__main__":
    main()
