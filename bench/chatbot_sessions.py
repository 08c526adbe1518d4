"""Concurrent streamed chatbot sessions on one worker: N end users, each with their own token,
each sending M streamed messages in a row (each turn reads and appends the end user's thread),
all at once, against ``junction serve --workers 1`` (SQLite documents, Redis cache/limits unless
``--no-redis``) and the fixed bench upstream.

    .venv/bin/python bench/chatbot_sessions.py [--sessions 100] [--messages 3] [--chunks 50] [--redis-db 9]

Prints JSON: sessions, messages, errors (status → count), wall seconds, stream latency p50/p99.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx

from junction.testing.server import JunctionProcess
from junction.testing.upstream import free_port

MASTER = "sk-bench-master"


async def session(client: httpx.AsyncClient, token: str, messages: int, latencies: list[float],
                  errors: Counter[str]) -> None:
    headers = {"authorization": f"Bearer {token}", "origin": "https://shop.example"}
    for index in range(messages):
        started = time.perf_counter()
        try:
            async with client.stream("POST", "/api/v1/chatbots/bench-bot/messages", headers=headers,
                                     json={"message": f"question {index}", "stream": True}) as response:
                body = b"".join([chunk async for chunk in response.aiter_bytes()])
            if response.status_code != 200 or not body.rstrip().endswith(b"data: [DONE]"):
                errors[str(response.status_code)] += 1
                continue
        except httpx.HTTPError as error:
            errors[type(error).__name__] += 1
            continue
        latencies.append((time.perf_counter() - started) * 1000)


async def run(url: str, tokens: list[str], messages: int) -> dict[str, object]:
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    limits = httpx.Limits(max_connections=len(tokens) + 10, max_keepalive_connections=len(tokens) + 10)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
        started = time.perf_counter()
        await asyncio.gather(*(session(client, token, messages, latencies, errors) for token in tokens))
        wall = time.perf_counter() - started
    ordered = sorted(latencies)
    return {"sessions": len(tokens), "messages": len(tokens) * messages, "ok": len(latencies),
            "errors": dict(errors), "wall_s": round(wall, 2),
            "stream_p50_ms": round(statistics.median(ordered), 1) if ordered else None,
            "stream_p99_ms": round(ordered[int(len(ordered) * 0.99) - 1], 1) if ordered else None}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sessions", type=int, default=100)
    parser.add_argument("--messages", type=int, default=3)
    parser.add_argument("--chunks", type=int, default=50)
    parser.add_argument("--redis-db", type=int, default=9)
    parser.add_argument("--no-redis", action="store_true")
    args = parser.parse_args()
    directory = Path(tempfile.mkdtemp(prefix="junction-chatbot-bench-"))
    upstream_port = free_port()
    upstream = subprocess.Popen([sys.executable, str(Path(__file__).with_name("upstream.py")),
                                 "--port", str(upstream_port), "--chunks", str(args.chunks)])
    cache = "" if args.no_redis else f'cache = "redis://127.0.0.1:6379/{args.redis_db}"\n'
    config = f"""
[providers.openai]
api_key = "sk-upstream"
base_url = "http://127.0.0.1:{upstream_port}/v1"

[stores]
documents = "sqlite+aiosqlite:///{directory}/documents.db"
{cache}
[logging]
access_log = false
"""
    try:
        with JunctionProcess(directory, config, master_key=MASTER, workers=1) as server, \
                httpx.Client(base_url=server.url, timeout=30,
                             headers={"authorization": f"Bearer {MASTER}"}) as admin:
            org = admin.post("/api/v1/admin/orgs", json={"name": "Bench"}).json()["id"]
            created = admin.post("/api/v1/bridges", json={
                "org_id": org, "slug": "bench-bot", "name": "Bench bot", "model": "openai/gpt-4o-mini",
                "prompt": "Help.", "type": "chatbot", "chatbot": {"allowed_origins": ["https://shop.example"]}})
            assert created.status_code == 201, created.text
            tokens = [admin.post("/api/v1/chatbots/bench-bot/token",
                                 json={"org_id": org, "end_user_id": f"user-{i}"}).json()["token"]
                      for i in range(args.sessions)]
            print(json.dumps(asyncio.run(run(server.url, tokens, args.messages))))
    finally:
        upstream.terminate()
        upstream.wait(timeout=5)


if __name__ == "__main__":
    main()
