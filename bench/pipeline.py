"""The pipeline's own cost per call, in process: no HTTP, a provider that answers at once.

    python bench/pipeline.py [--calls 200000]

Prints microseconds per call through ``Gateway.complete`` and ``Gateway.open_stream`` (10 events)
with the built-in stages as configured by default, and with no stage at all. What HTTP adds is
bench/run.py's business; this isolates what the stages, the attempt loop and the Call cost.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import time
from collections.abc import AsyncIterator

from junction.pipeline import Gateway
from junction.plugins import Call, PluginContext, Principal
from junction.plugins.manager import LoadedPlugins, load_plugins
from junction.routing.router import Router
from junction.schemas.chat import ChatRequest, ChatResponse, Choice, Message, Usage
from junction.schemas.stream import StreamDone, StreamStart, TextDelta
from junction.settings import settings_from_mapping

CALLER = Principal(id="key:bench", kind="key", scopes=frozenset({"chat"}), org_id="org-bench")
ANSWER = ChatResponse(id="r", created=0, model="m", usage=Usage(prompt_tokens=1, completion_tokens=1, total_tokens=2),
                      choices=[Choice(index=0, message=Message(role="assistant", content="hi"), finish_reason="stop")])


class Instant:
    name = "instant"

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def complete(self, request, target) -> ChatResponse:
        return ANSWER

    async def stream(self, request, target) -> AsyncIterator:
        yield StreamStart(id="r", model="m", created=0)
        for _ in range(10):
            yield TextDelta(text="x")
        yield StreamDone()

    async def list_models(self) -> list[str]:
        return ["m"]


class NoCredentials:
    async def apply(self, org_id, deployment):
        return deployment


def gateway(with_stages: bool) -> Gateway:
    settings = settings_from_mapping({"auth": {"master_key": "bench"}})
    built_ins = load_plugins(settings, context=PluginContext(settings=settings, credentials=NoCredentials()))
    providers = {"instant": Instant()}
    plugins = LoadedPlugins(infos=[], providers=providers,  # type: ignore[dict-item]
                            stages=built_ins.stages if with_stages else [])
    assert built_ins.policy is not None
    return Gateway(settings, plugins, Router(providers, {"instant"}, {}), built_ins.policy)  # type: ignore[arg-type]


async def per_call(gateway: Gateway, calls: int, stream: bool) -> float:
    request = ChatRequest(model="instant/m", messages=[Message(role="user", content="hi")], stream=stream or None)
    gc.collect()
    started = time.perf_counter()
    for _ in range(calls):
        call = Call(request_id="r", endpoint="chat.completions", principal=CALLER, request=request)
        if stream:
            async for _event in await gateway.open_stream(call):
                pass
        else:
            await gateway.complete(call)
    return (time.perf_counter() - started) / calls * 1e6


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=200_000)
    args = parser.parse_args()
    for label, with_stages in (("default stages", True), ("no stage", False)):
        chosen = gateway(with_stages)
        for stream in (False, True):
            await per_call(chosen, args.calls // 10, stream)  # warm-up
            best = min([await per_call(chosen, args.calls, stream) for _ in range(3)])
            print(f"{label:15} {'stream (10 events)' if stream else 'JSON':19} {best:7.2f} µs per call")


if __name__ == "__main__":
    asyncio.run(main())
