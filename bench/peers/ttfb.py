"""Time to first byte and to the last byte of streamed chat completions, one keep-alive connection.

    python ttfb.py URL --key KEY --model MODEL [--requests 300]
Prints ``TTFB ttfb_p50_ms=… ttfb_p99_ms=… total_p50_ms=… events=…``.
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
    parser.add_argument("--key", default="none")
    parser.add_argument("--model", default="gpt-4o-mini")
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
    body = json.dumps({"model": args.model, "stream": True, "max_tokens": 32,
                       "messages": [{"role": "user", "content": "Say hello in one short sentence."}]}).encode()
    parts = urlsplit(args.url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port)
    headers = {"content-type": "application/json", "authorization": f"Bearer {args.key}"}
    first, total, events = [], [], 0
    for index in range(args.requests + 20):
        started = time.perf_counter()
        connection.request("POST", parts.path, body, headers)
        response = connection.getresponse()
        if response.status != 200:
            raise SystemExit(f"HTTP {response.status}: {response.read()[:300]!r}")
        line = response.readline()
        ttfb = time.perf_counter() - started
        rest = line + response.read()
        done = time.perf_counter() - started
        if index >= 20:  # warm-up excluded
            first.append(ttfb * 1000)
            total.append(done * 1000)
            events = rest.count(b"data:")
    first.sort()
    print(f"TTFB ttfb_p50_ms={statistics.median(first):.3f} ttfb_p99_ms={first[int(len(first) * 0.99)]:.3f} "
          f"total_p50_ms={statistics.median(total):.3f} events={events}")


if __name__ == "__main__":
    main()
