"""The routing policy orders each call's deployments and hears every attempt, in order; the
default ``weighted`` policy's retry rules come from its config."""

from __future__ import annotations

import pytest

from junction.errors import ConfigError, InvalidRequest, UpstreamError, UpstreamUnavailable
from junction.middleware.weighted.policy import WeightedConfig, WeightedPolicy
from tests.unit.pipeline_kit import ScriptedProvider, build_gateway, chat_call

CHAIN = {"chain": {"deployments": [{"model": "scripted/down"}], "fallbacks": ["scripted/slow", "scripted/ok"]}}


class Listening(WeightedPolicy):
    """The default policy, recording what it is told."""

    def __init__(self, **config) -> None:
        super().__init__(WeightedConfig(**config))
        self.heard: list[tuple[str, int | None, str | None]] = []
        self.ordered: list[list[str]] = []

    async def order(self, call, candidates):
        ordered = await super().order(call, candidates)
        self.ordered.append([d.label for d in ordered])
        return ordered

    async def attempted(self, call, attempt):
        self.heard.append((attempt.deployment, attempt.status, attempt.error_class))
        return await super().attempted(call, attempt)


@pytest.mark.parametrize("stream", [False, True])
async def test_the_policy_hears_every_attempt_of_a_fallback_chain_in_order(stream):
    policy = Listening()
    provider = ScriptedProvider()
    gateway = build_gateway(provider=provider, policy=policy, aliases=CHAIN)
    call = chat_call("chain", stream=stream)
    if stream:
        events = await gateway.open_stream(call)
        [event async for event in events]
    else:
        await gateway.complete(call)
    expected = [("scripted/down", 502, "upstream_error"), ("scripted/slow", 504, "timeout_error"),
                ("scripted/ok", 200, None)]
    assert policy.heard == expected
    assert [(a.deployment, a.status, a.error_class) for a in call.attempts] == expected
    assert [a.fallback for a in call.attempts] == [False, True, True]
    assert all(a.latency_ms is not None and a.latency_ms >= 0 for a in call.attempts)
    assert call.attempts[-1].ttfb_ms is not None
    assert call.response_headers == {"x-junction-deployment": "scripted/ok", "x-junction-fallback": "true",
                                     "x-junction-first-failure": "upstream_error"}
    assert call.fallback_used and call.outcome.status == 200


async def test_an_error_about_the_request_itself_is_not_retried():
    policy = Listening()
    aliases = {"chain": {"deployments": [{"model": "scripted/bad"}], "fallbacks": ["scripted/ok"]}}
    gateway = build_gateway(policy=policy, aliases=aliases)
    with pytest.raises(InvalidRequest):
        await gateway.complete(chat_call("chain"))
    assert policy.heard == [("scripted/bad", 400, "invalid_request_error")]


async def test_a_policy_plugin_can_reorder_the_deployments():
    class LastFirst(Listening):
        async def order(self, call, candidates):
            return list(reversed(candidates))

    policy = LastFirst()
    gateway = build_gateway(policy=policy, aliases=CHAIN)
    call = chat_call("chain")
    await gateway.complete(call)
    assert policy.heard == [("scripted/ok", 200, None)]
    assert call.response_headers == {"x-junction-deployment": "scripted/ok"}


async def test_a_policy_that_leaves_no_deployment_fails_the_call_with_a_503():
    class Nothing(Listening):
        async def order(self, call, candidates):
            return []

    with pytest.raises(UpstreamUnavailable) as caught:
        await build_gateway(policy=Nothing(), aliases=CHAIN).complete(chat_call("chain"))
    assert caught.value.code == "no_deployment_available" and caught.value.headers == {"Retry-After": "1"}


async def test_retry_on_names_the_error_classes_that_move_on():
    policy = Listening(retry_on=["timeout_error"])
    gateway = build_gateway(policy=policy, aliases=CHAIN)
    with pytest.raises(UpstreamError):
        await gateway.complete(chat_call("chain"))
    assert policy.heard == [("scripted/down", 502, "upstream_error")]


async def test_max_attempts_bounds_the_chain():
    policy = Listening(max_attempts=2)
    gateway = build_gateway(policy=policy, aliases=CHAIN)
    call = chat_call("chain")
    with pytest.raises(UpstreamError):
        await gateway.complete(call)
    assert [a.deployment for a in call.attempts] == ["scripted/down", "scripted/slow"]


async def test_backoff_waits_between_attempts_and_doubles():
    policy = Listening(backoff_seconds=0.05, jitter=False)
    call = chat_call("chain")
    await build_gateway(policy=policy, aliases=CHAIN).complete(call)
    first, second, third = call.attempts
    assert second.started_ms - first.started_ms >= 50
    assert third.started_ms - second.started_ms >= 100


async def test_retry_after_is_honoured_before_retrying_the_deployment_that_sent_it():
    aliases = {"chain": {"deployments": [{"model": "scripted/limited"}], "fallbacks": ["scripted/ok"]}}
    policy = Listening(retries_per_deployment=1)
    call = chat_call("chain")
    await build_gateway(policy=policy, aliases=aliases).complete(call)
    limited, again, ok = call.attempts
    assert [a.deployment for a in call.attempts] == ["scripted/limited", "scripted/limited", "scripted/ok"]
    assert limited.retry_after == 0.05 and again.started_ms - limited.started_ms >= 50
    assert ok.started_ms - again.started_ms < 50  # another deployment: its Retry-After does not apply
    call = chat_call("chain")
    await build_gateway(policy=Listening(retries_per_deployment=1, honour_retry_after=False),
                        aliases=aliases).complete(call)
    assert call.attempts[1].started_ms - call.attempts[0].started_ms < 50


async def test_weights_pick_the_first_deployment():
    aliases = {"w": {"deployments": [{"model": "scripted/a", "weight": 1}, {"model": "scripted/b", "weight": 1000}],
                     "fallbacks": ["scripted/ok"]}}
    policy = Listening()
    gateway = build_gateway(policy=policy, aliases=aliases)
    for _ in range(20):
        await gateway.complete(chat_call("w"))
    firsts = [order[0] for order in policy.ordered]
    assert firsts.count("scripted/b") >= 18
    assert all(order[-1] == "scripted/ok" for order in policy.ordered)


def test_an_unknown_error_class_is_a_config_error_naming_the_key():
    with pytest.raises(ConfigError, match=r"middleware.weighted.retry_on\[1\]: 'teapot' is not an error class"):
        WeightedPolicy(WeightedConfig(retry_on=["timeout_error", "teapot"]))
