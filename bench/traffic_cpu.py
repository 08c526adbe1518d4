"""What rate limits, budgets and the response cache cost a worker per call, in process: CPU time
(steadier than wall-clock RPS on a shared host) and c=1 latency, without HTTP.

    python bench/traffic_cpu.py [--calls 3000] [--rounds 3] [--base DIR] [--configs limits ...]

A ``redis-server`` of its own (pinned to CPU 1) holds the shared state; this process (pinned to
CPU 0) builds the built-in stages from a config through ``load_plugins`` in front of a provider
that answers at once, and runs each configuration in a fresh subprocess: ``none`` (traffic
plugins off), ``limits`` (rate-limit + budget: four windows and two budgets), ``limits+miss``
(and the response cache, every prompt new) and ``hit`` (the cache answering one prompt from
Redis, no worker memory). Prints per configuration the median over rounds of the process's CPU µs
per call with 32 calls in flight, and the p50 wall µs of one call at a time; ``--base DIR`` also
runs every configuration from another checkout, rounds interleaved, for a before/after of a
change (run by ``DIR/.venv/bin/python``, or without one this Python mapped to its code: see
bench/run.py's ``interpreter``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CONFIGS = ("none", "limits", "limits+miss", "hit")
#: Store timeouts far above any round trip of a loaded host: a guard that opened (fail open: no
#: Redis at all) would make a configuration look free. Each run reports its guards' failures.
PATIENT = {"store_timeout_seconds": 10.0}
TRAFFIC = {"rate-limit": {"enabled": True, "prefix": "bench:rl", **PATIENT},
           "budget": {"enabled": True, "prefix": "bench:budget", **PATIENT}}
CACHE = {"response-cache": {"enabled": True, "key_prefix": "bench:cache:", "local_seconds": 0, **PATIENT}}


async def measure(name: str, redis_url: str, calls: int) -> dict[str, float]:
    from junction.pipeline import Gateway
    from junction.plugins import Call, PluginContext, Principal
    from junction.plugins.manager import LoadedPlugins, load_plugins
    from junction.pricing import ModelPrice, PriceBook
    from junction.routing.router import Router
    from junction.schemas.chat import ChatRequest, ChatResponse, Choice, Message, Usage
    from junction.settings import settings_from_mapping

    answer = ChatResponse(id="r", created=0, model="m", usage=Usage(prompt_tokens=9, completion_tokens=2, total_tokens=11),
                          choices=[Choice(index=0, message=Message(role="assistant", content="hi"),
                                          finish_reason="stop")])

    class Instant:
        name = "instant"

        async def start(self) -> None: ...

        async def close(self) -> None: ...

        async def complete(self, request: object, target: object) -> ChatResponse:
            return answer

    class NoCredentials:
        async def apply(self, org_id: object, deployment: object) -> object:
            return deployment

    middleware = {} if name == "none" else dict(TRAFFIC)
    if name in ("limits+miss", "hit"):
        middleware.update(CACHE)
    if name == "hit":
        middleware = dict(CACHE)
    settings = settings_from_mapping({"auth": {"master_key": "bench"}, "stores": {"cache": redis_url},
                                      "middleware": middleware})
    import redis.asyncio as redis

    client = redis.Redis.from_url(redis_url)
    book = PriceBook()
    book.add_provider_prices("instant", [ModelPrice(model="m", input=0.15, output=0.6)])
    services: dict[str, object] = {"settings": settings, "redis": client, "pricing": book,
                                   "credentials": NoCredentials()}
    pipeline = None
    if "redis_pipeline" in PluginContext.__dataclass_fields__:  # this checkout pipelines store batches
        from junction.stores.redis_pipeline import PipelinedRedis

        pipeline = services["redis_pipeline"] = PipelinedRedis(redis_url)
    built = load_plugins(settings, context=PluginContext(**services))  # type: ignore[arg-type]
    providers = {"instant": Instant()}
    plugins = LoadedPlugins(infos=[], providers=providers, stages=built.stages)  # type: ignore[dict-item]
    gateway = Gateway(settings, plugins, Router(providers, {"instant"}, {}), built.policy)  # type: ignore[arg-type]
    await gateway.start()
    if pipeline is not None:
        await pipeline.connect()
    caller = Principal(id="key:bench", kind="key", scopes=frozenset({"chat"}), rpm=2_000_000_000,
                       tpm=2_000_000_000, budget_usd=1e6, budget_period="day")
    counter = iter(range(10**9))

    def call() -> Call:
        text = "Hello, cache!" if name == "hit" else f"Hello {os.getpid()}-{next(counter)}!"
        request = ChatRequest(model="instant/m", messages=[Message(role="user", content=text)])
        return Call(request_id="r", endpoint="chat.completions", principal=caller, request=request)

    async def worker(count: int) -> None:
        for _ in range(count):
            await gateway.complete(call())

    await worker(300)  # warm-up (and the hit's entry)
    latencies = []
    for _ in range(calls // 4):
        started = time.perf_counter()
        await gateway.complete(call())
        latencies.append(time.perf_counter() - started)
    cpu = time.process_time()
    await asyncio.gather(*(worker(calls // 32) for _ in range(32)))
    cpu_us = (time.process_time() - cpu) / (calls // 32 * 32) * 1e6
    failures = sum(stage.guard.failures for _, stage in built.stages if hasattr(stage, "guard"))
    await gateway.close()
    if pipeline is not None:
        await pipeline.aclose()
    await client.aclose()
    if failures:
        raise SystemExit(f"{name}: the store failed {failures} times; the numbers would not count Redis")
    return {"cpu_us": cpu_us, "p50_us": statistics.median(latencies) * 1e6}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--base", type=Path, help="also run every configuration from this checkout")
    parser.add_argument("--configs", nargs="+", choices=CONFIGS, default=list(CONFIGS),
                        help="these configurations only (none is always run: the others are read against it)")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: measure one configuration
    parser.add_argument("--redis", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        import uvloop

        print(json.dumps(uvloop.run(measure(args.one, args.redis, args.calls))))
        return
    from run import free_port, interpreter, pinned
    from traffic import forget, wait_for_redis

    port = free_port()
    workdir = Path(tempfile.mkdtemp(prefix="junction-traffic-cpu-"))
    server = subprocess.Popen(pinned(1, ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no",
                                         "--dir", str(workdir)]), stdout=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    sources = {"new": HERE.parent} | ({"base": args.base.resolve()} if args.base else {})
    results: dict[tuple[str, str], list[dict[str, float]]] = {}
    try:
        wait_for_redis(url)
        for round_ in range(args.rounds):
            order = list(sources) if round_ % 2 == 0 else list(reversed(sources))
            for side in order:
                for name in ["none", *(name for name in args.configs if name != "none")]:
                    python, env = interpreter(sources[side])
                    output = subprocess.run(pinned(0, [python, __file__, "--one", name, "--redis", url,
                                                       "--calls", str(args.calls)]),
                                            env=env, capture_output=True, text=True, check=True).stdout
                    results.setdefault((side, name), []).append(json.loads(output.splitlines()[-1]))
                    forget(url)
    finally:
        server.terminate()
        server.wait()
    for side in sources:
        none_cpu = statistics.median(r["cpu_us"] for r in results[(side, "none")])
        none_p50 = statistics.median(r["p50_us"] for r in results[(side, "none")])
        for name in [name for name in CONFIGS if (side, name) in results]:
            cpu = statistics.median(r["cpu_us"] for r in results[(side, name)])
            p50 = statistics.median(r["p50_us"] for r in results[(side, name)])
            rounds = ", ".join(f"{r['cpu_us']:.0f}/{r['p50_us']:.0f}" for r in results[(side, name)])
            print(f"{side:5} {name:12} CPU {cpu:7.1f} µs/call ({cpu - none_cpu:+7.1f})   "
                  f"c=1 p50 {p50:7.1f} µs ({p50 - none_p50:+7.1f})   rounds cpu/p50: {rounds}")


if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    main()
