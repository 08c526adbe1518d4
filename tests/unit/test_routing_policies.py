"""The built-in routing policies' orders (least-in-flight, lowest-latency, cost-first), the shared
retry rules (jitter, deadline, context-length detection), and the in-memory circuit breaker."""

from __future__ import annotations

import asyncio

import pytest

from junction.errors import ConfigError, UpstreamError, UpstreamOverloaded
from junction.middleware.circuit_breaker.config import CircuitBreakerConfig
from junction.middleware.circuit_breaker.stage import CircuitBreakerStage
from junction.middleware.cost_first import CostFirst, CostFirstConfig
from junction.middleware.least_in_flight import LeastInFlight, LeastInFlightConfig
from junction.middleware.lowest_latency import LowestLatency, LowestLatencyConfig
from junction.middleware.weighted.policy import WeightedConfig, WeightedPolicy
from junction.plugins import Attempt, PluginContext
from junction.pricing import PriceBook
from junction.routing.retries import CONTEXT_LENGTH_EXCEEDED, classify
from junction.settings import settings_from_mapping
from tests.unit.pipeline_kit import ScriptedProvider, build_gateway, chat_call

PAIR = {"pair": {"deployments": [{"model": "scripted/a"}, {"model": "scripted/b"}], "fallbacks": ["scripted/ok"]}}


def labels(call) -> list[str]:
    return [attempt.deployment for attempt in call.attempts]


async def test_lowest_latency_prefers_the_faster_deployment_once_measured():
    policy = LowestLatency(LowestLatencyConfig(explore=0))
    gateway = build_gateway(policy=policy, aliases=PAIR)
    policy.ttfb.update({"scripted/a": 80.0, "scripted/b": 5.0})
    call = chat_call("pair")
    await gateway.complete(call)
    assert labels(call) == ["scripted/b"]
    policy.ttfb["scripted/b"] = 500.0
    call = chat_call("pair")
    await gateway.complete(call)
    assert labels(call) == ["scripted/a"]
    assert policy.ttfb["scripted/a"] < 80.0  # the new measurement (microseconds) pulled the average down


async def test_lowest_latency_counts_a_failure_as_the_penalty():
    policy = LowestLatency(LowestLatencyConfig(explore=0, failure_penalty_ms=1000, alpha=0.5))
    aliases = {"flaky": {"deployments": [{"model": "scripted/down"}, {"model": "scripted/ok"}]}}
    gateway = build_gateway(policy=policy, aliases=aliases)
    policy.ttfb.update({"scripted/down": 1.0, "scripted/ok": 2.0})
    await gateway.complete(chat_call("flaky"))
    assert policy.ttfb["scripted/down"] == pytest.approx(500.5)
    call = chat_call("flaky")
    await gateway.complete(call)
    assert labels(call) == ["scripted/ok"]


async def test_cost_first_orders_by_price_and_puts_unpriced_last():
    settings = settings_from_mapping({"auth": {"master_key": "x"}, "pricing": {"models": {
        "scripted/a": {"input": 5.0, "output": 15.0}, "scripted/b": {"input": 0.1, "output": 0.4}}}})
    policy = CostFirst(CostFirstConfig(), PluginContext(settings=settings, pricing=PriceBook(settings.pricing)))
    aliases = {"three": {"deployments": [{"model": "scripted/unpriced"}, {"model": "scripted/a"},
                                         {"model": "scripted/b"}]}}
    gateway = build_gateway(policy=policy, aliases=aliases)
    order = await policy.order(chat_call("three"), gateway.router.resolve("three"))
    assert [d.label for d in order] == ["scripted/b", "scripted/a", "scripted/unpriced"]


async def test_least_in_flight_sends_the_next_call_to_the_idle_deployment():
    release = asyncio.Event()

    class Held(ScriptedProvider):
        async def complete(self, request, target):
            if target.model == "a":
                await release.wait()
            return await super().complete(request, target)

    policy = LeastInFlight(LeastInFlightConfig())
    gateway = build_gateway([policy], provider=Held(), policy=policy,
                            aliases={"pair": {"deployments": [{"model": "scripted/a", "weight": 1000},
                                                              {"model": "scripted/b", "weight": 0.001}]}})
    first = chat_call("pair")
    held = asyncio.create_task(gateway.complete(first))
    await asyncio.sleep(0.01)
    assert policy.in_flight["scripted/a"] == 1
    second = chat_call("pair")
    await gateway.complete(second)
    assert labels(second) == ["scripted/b"]  # despite a's weight: a has one in flight
    release.set()
    await held
    assert labels(first) == ["scripted/a"] and policy.in_flight == {}


async def test_least_in_flight_counts_a_stream_until_its_last_event():
    policy = LeastInFlight(LeastInFlightConfig())
    gateway = build_gateway([policy], policy=policy)
    events = await gateway.open_stream(chat_call(stream=True))
    first = await anext(events)
    assert first is not None and policy.in_flight["scripted/ok"] == 1
    [event async for event in events]
    assert policy.in_flight == {}


async def test_jitter_draws_a_random_part_of_the_backoff():
    policy = WeightedPolicy(WeightedConfig(backoff_seconds=10, max_backoff_seconds=10, jitter=True))
    call = chat_call("chain")
    await policy.order(call, build_gateway(aliases=PAIR).router.resolve("pair"))
    call.attempts.append(Attempt(deployment="scripted/a", provider="scripted", started_ms=0, status=502,
                                 error_class="upstream_error"))
    delays = {(await policy.attempted(call, call.attempts[0])).delay for _ in range(20)}
    assert len(delays) > 10 and all(0 <= delay <= 10 for delay in delays)


async def test_no_attempt_starts_after_the_deadline():
    policy = WeightedPolicy(WeightedConfig(backoff_seconds=0.2, jitter=False, deadline_seconds=0.3))
    aliases = {"chain": {"deployments": [{"model": "scripted/down"}],
                         "fallbacks": ["scripted/down", "scripted/down", "scripted/ok"]}}
    call = chat_call("chain")
    with pytest.raises(UpstreamError):
        await build_gateway(policy=policy, aliases=aliases).complete(call)
    assert labels(call) == ["scripted/down", "scripted/down"]  # the third would start after 0.6 s


def test_context_length_errors_are_told_apart_from_other_bad_requests():
    def attempt(code, message):
        return Attempt(deployment="x/y", provider="x", started_ms=0, status=400,
                       error_class="invalid_request_error", error_code=code, error_message=message)

    assert classify(attempt("context_length_exceeded", "")) == CONTEXT_LENGTH_EXCEEDED
    assert classify(attempt(None, "anthropic: prompt is too long: 210000 tokens > 200000 maximum")) == \
        CONTEXT_LENGTH_EXCEEDED
    assert classify(attempt(None, "gemini: The input token count (1200000) exceeds the maximum")) == \
        CONTEXT_LENGTH_EXCEEDED
    assert classify(attempt("invalid_value", "temperature: must be at most 2")) == "invalid_request_error"


def test_an_alias_fallback_on_naming_no_error_class_is_a_config_error():
    settings = settings_from_mapping({"models": {"m": {"deployments": [{"model": "a/b"}],
                                                       "fallback_on": ["rate_limit_error", "teapot"]}}})
    with pytest.raises(ConfigError, match=r"models.m.fallback_on\[1\]: 'teapot'"):
        WeightedPolicy(WeightedConfig(), PluginContext(settings=settings))


async def test_the_in_memory_breaker_opens_refuses_probes_and_closes():
    settings = settings_from_mapping({"auth": {"master_key": "x"}})
    breaker = CircuitBreakerStage(CircuitBreakerConfig(failure_threshold=2, open_seconds=0.2, probe_seconds=5),
                                  PluginContext(settings=settings))
    provider = ScriptedProvider()
    aliases = {"pair": {"deployments": [{"model": "scripted/down"}], "fallbacks": ["scripted/ok"]}}
    gateway = build_gateway([breaker], provider=provider, aliases=aliases)
    for _ in range(2):
        await gateway.complete(chat_call("pair"))
    call = chat_call("pair")
    await gateway.complete(call)
    refused = call.attempts[0]
    assert (refused.deployment, refused.status, refused.error_code) == ("scripted/down", 503, "circuit_open")
    assert provider.log.count("provider:down:failed") == 2
    await asyncio.sleep(0.25)
    await gateway.complete(chat_call("pair"))  # the half-open probe fails: open again
    assert provider.log.count("provider:down:failed") == 3
    call = chat_call("pair")
    await gateway.complete(call)
    assert call.attempts[0].error_code == "circuit_open"


def test_a_refusal_is_an_overloaded_error_with_retry_after():
    settings = settings_from_mapping({"auth": {"master_key": "x"}})
    breaker = CircuitBreakerStage(CircuitBreakerConfig(), PluginContext(settings=settings))
    error = breaker._refuse("openai/gpt-4o", 2.2)
    assert isinstance(error, UpstreamOverloaded) and error.code == "circuit_open"
    assert error.headers == {"Retry-After": "3"}


async def test_bridge_fallback_on_limits_what_reaches_a_bridges_fallback_model():
    policy = WeightedPolicy(WeightedConfig(bridge_fallback_on={"b-1": ["rate_limit_error"]}))
    gateway = build_gateway(policy=policy)
    call = chat_call("scripted/down")
    call.bridge_id, call.fallback_model = "b-1", "scripted/ok"
    with pytest.raises(UpstreamError):
        await gateway.complete(call)
    assert labels(call) == ["scripted/down"]  # a 5xx is not what this bridge falls back on
    call = chat_call("scripted/limited")
    call.bridge_id, call.fallback_model = "b-1", "scripted/ok"
    await gateway.complete(call)
    assert labels(call) == ["scripted/limited", "scripted/ok"]
    call = chat_call("scripted/down")
    call.bridge_id, call.fallback_model = "another-bridge", "scripted/ok"
    await gateway.complete(call)
    assert labels(call) == ["scripted/down", "scripted/ok"]
