"""Compares candidate upstream HTTP clients on the gateway's hottest operation: one keep-alive
POST of a small JSON body and reading the JSON answer, against bench/upstream.py.

    python bench/upstream.py --port 9100 &   # pinned elsewhere, e.g. taskset -c 1
    taskset -c 0 python bench/http_clients.py --port 9100
Prints µs per request, sequential (latency) and with 32 concurrent requests (throughput), and the
process's CPU time per request at 32 concurrent (all threads: a Rust client's runtime included),
the figure that holds on a busy host. The ``J-…`` rows are Junction's own clients
(``http_client`` = httptools, pyreqwest, aiohttp), through the path every provider adapter takes.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

BODY = b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hello!"}]}'
HEADERS = {"content-type": "application/json", "authorization": "Bearer sk-upstream"}


async def measure(name: str, post, requests: int) -> None:
    for _ in range(200):
        await post()
    samples = []
    for _ in range(requests):
        started = time.perf_counter()
        await post()
        samples.append((time.perf_counter() - started) * 1e6)
    started, cpu = time.perf_counter(), time.process_time()
    for _ in range(requests // 32):
        await asyncio.gather(*(post() for _ in range(32)))
    done = requests // 32 * 32
    concurrent = (time.perf_counter() - started) * 1e6 / done
    cpu_us = (time.process_time() - cpu) * 1e6 / done
    print(f"{name:9} sequential p50 {statistics.median(samples):7.1f} µs   concurrent(32) {concurrent:7.1f} µs/request"
          f"   CPU {cpu_us:6.1f} µs/request")


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=9100)
    parser.add_argument("--path", default="/v1/chat/completions")
    parser.add_argument("--requests", type=int, default=5000)
    args = parser.parse_args()
    url = f"http://127.0.0.1:{args.port}{args.path}"

    import aiohttp

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256)) as session:
        async def aiohttp_post() -> bytes:
            async with session.post(url, data=BODY, headers=HEADERS) as response:
                return await response.read()

        await measure("aiohttp", aiohttp_post, args.requests)

    tuned = aiohttp.TCPConnector(limit=256, ttl_dns_cache=300, keepalive_timeout=60)
    async with aiohttp.ClientSession(connector=tuned, auto_decompress=False, skip_auto_headers=("User-Agent",)) as session:
        async def aiohttp_tuned_post() -> bytes:
            async with session.post(url, data=BODY, headers=HEADERS) as response:
                return await response.read()

        await measure("aiohttp-t", aiohttp_tuned_post, args.requests)

    try:
        from pyreqwest.client import ClientBuilder
    except ImportError:
        print("pyreqwest not installed; skipped")
    else:
        async with ClientBuilder().max_connections(256).build() as client:
            async def pyreqwest_post() -> bytes:
                response = await client.post(url).headers(HEADERS).body_bytes(BODY).build().send()
                return bytes(await response.bytes())

            await measure("pyreqwest", pyreqwest_post, args.requests)

    # Junction's own clients (app/upstream), the whole path a provider adapter takes: the pool
    # slot, the request, the answer's status and body.
    from junction.plugins.protocols import ProviderConfig
    from junction.upstream.http import new_upstream_client

    for label, library in (("J-native", "httptools"), ("J-reqwest", "pyreqwest"), ("J-aiohttp", "aiohttp")):
        junction_client = new_upstream_client("openai", ProviderConfig(api_key="sk-upstream", http_client=library))
        await junction_client.start()

        async def junction_post(client=junction_client) -> bytes:
            return await client.post(url, BODY, HEADERS)

        await measure(label, junction_post, args.requests)
        await junction_client.close()

    try:
        import httpx
    except ImportError:
        print("httpx not installed; skipped")
        return
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=256)) as client:
        async def httpx_post() -> bytes:
            response = await client.post(url, content=BODY, headers=HEADERS)
            return response.content

        await measure("httpx", httpx_post, args.requests)


if __name__ == "__main__":
    import uvloop

    uvloop.run(main())
