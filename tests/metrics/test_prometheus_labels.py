"""Prometheus labels stay bounded when callers choose the model names: a model a provider passes
through unpriced is the caller's own text, so past a worker's first ``UNKNOWN_MODELS`` of them the
rest share one ``other`` label, while a priced model always keeps its own."""

from __future__ import annotations

import msgspec
from prometheus_client.parser import text_string_to_metric_families

from junction.middleware.metrics.config import MetricsConfig
from junction.middleware.metrics.prometheus import OTHER_MODEL, UNKNOWN_MODELS
from junction.middleware.metrics.stage import MetricsStage
from junction.plugins import Call, PluginContext, Principal
from junction.plugins.call import Attempt
from junction.pricing import PriceBook, load_prices
from junction.schemas.chat import ChatRequest, Usage
from junction.settings import settings_from_mapping


def models_labelled(stage: MetricsStage) -> set[str]:
    return {sample.labels["gen_ai_request_model"]
            for family in text_string_to_metric_families(stage.exposition().decode())
            if family.name == "junction_upstream_request_duration_seconds"
            for sample in family.samples}


async def test_unpriced_model_names_past_the_bound_share_one_label() -> None:
    pricing = PriceBook()
    pricing.add_provider_prices("openai", load_prices("junction.providers.openai"))
    stage = MetricsStage(MetricsConfig(ledger=False, server_timing=False),
                         PluginContext(settings=settings_from_mapping({}), pricing=pricing))
    principal = Principal(id="master", kind="master", scopes=frozenset({"chat"}))

    async def call(model: str) -> None:
        request = msgspec.convert({"model": f"openai/{model}", "messages": [{"role": "user", "content": "hi"}]},
                                  ChatRequest)
        done = Call(request_id="r", endpoint="chat.completions", principal=principal, request=request)
        await stage.enter(done)
        done.deployment = f"openai/{model}"
        done.attempts.append(Attempt(deployment=done.deployment, provider="openai", started_ms=0.1, status=200,
                                     ttfb_ms=1.0, latency_ms=2.0))
        done.succeeded(Usage(prompt_tokens=3, completion_tokens=2, total_tokens=5))
        done.run_ended()

    for index in range(UNKNOWN_MODELS + 50):
        await call(f"random-{index}")
    await call("gpt-4o")  # priced: its own label, though the unpriced ones used up theirs
    labelled = models_labelled(stage)
    assert {f"random-{index}" for index in range(UNKNOWN_MODELS)} <= labelled
    assert "random-120" not in labelled and OTHER_MODEL in labelled and "gpt-4o" in labelled
    assert len(labelled) == UNKNOWN_MODELS + 2
    totals = [sample.value for family in text_string_to_metric_families(stage.exposition().decode())
              if family.name == "gen_ai_server_request_duration_seconds" for sample in family.samples
              if sample.name.endswith("_count") and sample.labels["gen_ai_request_model"] == OTHER_MODEL]
    assert totals == [50.0]  # every call past the bound still counted, under "other"
