"""CPU per call of the ``metrics`` stage, in-process, load-robust: the stage (its ``enter`` and the
hooks it registers, run as the gateway runs them) around a trivial inner layer (one answered attempt with usage), with the embedded SQLite ledger (its
flushes included: the clock runs until the writer has written every row), Prometheus in
multiprocess mode and Server-Timing, as ``junction serve`` runs them; compared with the inner
layer alone. CPU time (``process_time``: every thread of the process) is what a busy shared host
inflates least; the bench/compare.py A/B measures the whole gateway.

    python bench/metrics_stage.py [--root CHECKOUT] [--calls 30000] [--rounds 2] [--off ledger,prometheus,server_timing]

``--root`` runs another checkout's code (e.g. a ``git worktree`` of the commit before), with its
own ``.venv`` when it has one (else this one's, mapped to its code: bench/checkout.py), for
before/after numbers from the same run of this script (run it once per checkout, interleaved).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parent.parent)
    parser.add_argument("--calls", type=int, default=30_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--off", default="", help="comma-separated [middleware.metrics] parts to switch off")
    args = parser.parse_args()
    python = args.root.resolve() / ".venv" / "bin" / "python"
    if python.exists() and Path(sys.executable).absolute() != python.absolute():
        # ``junction`` is an editable install: a checkout's code is what its own venv imports.
        os.execv(python, [str(python), str(Path(__file__).resolve()), *sys.argv[1:]])
    # Before prometheus_client is first imported: it picks its value store then.
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="junction-bench-prom-")
    if args.root.resolve() != Path(__file__).resolve().parent.parent:
        from checkout import install

        install(args.root)  # without a venv of its own: its code, this checkout's dependencies
    asyncio.run(run(args.calls, args.rounds, [part for part in args.off.split(",") if part]))


async def run(calls: int, rounds: int, off: list[str]) -> None:
    import msgspec

    from junction.middleware.metrics.config import MetricsConfig
    from junction.middleware.metrics.stage import MetricsStage
    from junction.plugins import Call, PluginContext, Principal
    from junction.plugins.call import Attempt
    from junction.pricing import PriceBook, load_prices
    from junction.schemas.chat import ChatRequest, ChatResponse
    from junction.settings import settings_from_mapping
    from junction.stores.metrics.store import MetricsStore
    from junction.stores.sql_engine import open_engine

    principal = Principal(id="master", kind="master", scopes=frozenset({"chat"}))
    request = msgspec.convert({"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "hi"}]},
                              ChatRequest)
    reply = msgspec.convert({"id": "x", "object": "chat.completion", "created": 1, "model": "gpt-4o",
                             "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"},
                                          "finish_reason": "stop"}],
                             "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}},
                            ChatResponse)

    async def inner(call: Call) -> ChatResponse:
        call.deployment = "openai/gpt-4o"
        call.attempts.append(Attempt(deployment="openai/gpt-4o", provider="openai", started_ms=0.1, status=200,
                                     ttfb_ms=1.0, latency_ms=2.0))
        call.succeeded(reply.usage)
        return reply

    settings = settings_from_mapping({"stores": {"metrics": f"sqlite+aiosqlite:///{tempfile.mkdtemp()}/metrics.db"}})

    class Engines:
        def __init__(self) -> None:
            self.opened = None

        def engine(self, store: str):  # type: ignore[no-untyped-def]
            self.opened = self.opened or open_engine(settings.stores.metrics)
            return self.opened

    store = MetricsStore(settings, Engines())  # type: ignore[arg-type]
    await store.start()
    pricing = PriceBook()
    pricing.add_provider_prices("openai", load_prices("junction.providers.openai"))
    stage = MetricsStage(MetricsConfig(**{part: False for part in off}),
                         PluginContext(settings=settings, usage=store, pricing=pricing))
    if hasattr(stage, "start"):
        await stage.start()
    async def with_metrics(call: Call) -> object:
        if not hasattr(call, "run_ended"):  # a checkout before the call hooks: the stage was a layer
            return await stage.handle(call, inner)
        # What the gateway does around the chain: the stage's enter registers the call's hooks.
        await stage.enter(call)
        reply = await inner(call)
        call.answered(reply)
        call.run_answered(None)
        call.run_ended()
        return reply

    sides = {"inner layer alone": inner, "metrics stage": with_metrics}
    results: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(rounds):
        for name, run_one in sides.items():
            batch = [Call(request_id=f"req-{index}", endpoint="chat.completions", principal=principal, request=request)
                     for index in range(calls)]
            began = time.process_time()
            for index, call in enumerate(batch):
                await run_one(call)
                if index % 1000 == 999:
                    await asyncio.sleep(0)  # let the writer take batches, as between requests
            if hasattr(stage, "drain"):  # calls kept by the stage until its next drain
                stage.drain()
            while store.writer is not None and store.writer.pending:
                await asyncio.sleep(0.01)
            results[name].append((time.process_time() - began) / calls * 1e6)
    if hasattr(stage, "close"):
        await stage.close()
    await store.close()
    for name, values in results.items():
        print(f"{name}: {min(values):.1f} us CPU per call (best of {rounds}; all: "
              f"{', '.join(f'{value:.1f}' for value in values)})")


if __name__ == "__main__":
    main()
