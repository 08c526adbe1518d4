"""The rate-limit and budget stages on the embedded default (no Redis: in-memory windows and
ledgers), in a real pipeline with a scripted provider: limits, settles with the real usage,
refunds, and response-cache hits (counted as requests, free of tokens and cost)."""

from __future__ import annotations

from typing import Any

import pytest

from junction.errors import RateLimited
from junction.middleware.budget.config import BudgetConfig
from junction.middleware.budget.stage import BudgetStage
from junction.middleware.rate_limit.config import RateLimitConfig
from junction.middleware.rate_limit.stage import RateLimitStage
from junction.plugins import Call, Next, PluginContext, Principal, Reply, Stage
from junction.pricing import ModelPrice, PriceBook
from junction.schemas.chat import ChatResponse, Choice, Message, Usage
from junction.settings import settings_from_mapping
from junction.traffic.limits import Limits
from tests.unit.pipeline_kit import build_gateway, chat_call


class CacheHit(Stage):
    """Stands for the response cache: answers ``cached`` models itself, as a hit."""

    async def handle(self, call: Call, next: Next) -> Reply:
        if call.request.model != "scripted/cached":
            return await next(call)
        call.cache_hit = True
        return ChatResponse(id="hit", created=0, model="cached",
                            usage=Usage(prompt_tokens=50, completion_tokens=50, total_tokens=100),
                            choices=[Choice(index=0, message=Message(role="assistant", content="x"),
                                            finish_reason="stop")])


def context() -> PluginContext:
    book = PriceBook()
    # $1 a million tokens in and out: costs read as token counts / 1e6.
    book.add_provider_prices("scripted", [ModelPrice(model=m, input=1.0, output=1.0) for m in ("ok", "cached", "down")])
    return PluginContext(settings=settings_from_mapping({"auth": {"master_key": "unused"}}), pricing=book)


def principal(**limits: Any) -> Principal:
    return Principal(id="key:embedded", kind="key", scopes=frozenset({"chat"}), **limits)


def call(model: str = "scripted/ok", **limits: Any) -> Call:
    made = chat_call(model, principal=principal(**limits))
    made.request.max_tokens = 10
    return made


async def test_request_and_token_windows_in_memory_settle_to_the_real_usage() -> None:
    limiter = RateLimitStage(RateLimitConfig(), context())
    gateway = build_gateway([limiter, CacheHit()])
    for _ in range(2):
        answered = call(rpm=3, tpm=10_000)
        await gateway.complete(answered)
        assert answered.response_headers["x-ratelimit-limit-requests"] == "3"
    hit = call("scripted/cached", rpm=3, tpm=10_000)
    await gateway.complete(hit)
    with pytest.raises(RateLimited) as refused:
        await gateway.complete(call(rpm=3, tpm=10_000))
    assert refused.value.param == "key.rpm" and int(refused.value.headers["Retry-After"]) >= 1

    usage = await limiter.usage("key", "key:embedded", Limits(rpm=3, tpm=10_000))
    assert usage.requests is not None and usage.requests.used == 3  # the hit counted as a request
    # "scripted/ok: hello world" → 3 prompt + 3 completion tokens each; the hit took none.
    assert usage.tokens is not None and usage.tokens.used == 2 * 6


async def test_budget_in_memory_reserves_settles_refunds_and_hits_are_free() -> None:
    budget = BudgetStage(BudgetConfig(prefix="prod-eu:budget"), context())  # a prefix with dashes
    gateway = build_gateway([budget, CacheHit()])
    limits = {"budget_usd": 0.0001, "budget_period": "day"}  # 100 tokens' worth
    await gateway.complete(call(**limits))  # 6 tokens
    await gateway.complete(call("scripted/cached", **limits))  # a hit: $0
    with pytest.raises(Exception):
        await gateway.complete(call("scripted/down", **limits))  # a failure: refunded
    report = (await budget.usage("key", "key:embedded", Limits(**limits))).budget
    assert report is not None and report.reserved_usd == 0
    assert report.spent_usd == pytest.approx(6e-6)

    # What is left (94 tokens' worth) does not fit a reservation of the prompt estimate + 100.
    big = call(**limits)
    big.request.max_tokens = 100
    with pytest.raises(RateLimited) as refused:
        await gateway.complete(big)
    assert refused.value.code == "budget_exceeded" and refused.value.param == "key.budget_usd"
    # The prompt estimate (15) + 100 is more than the whole budget: no retry can help.
    assert "is $0.0001 this day, less than the $0.000115 this request" in refused.value.message
    assert refused.value.headers == {"x-should-retry": "false"}
    # 95 would fit the budget, not what is spent: only the next day helps, and the SDKs are told so.
    smaller = call(**limits)
    smaller.request.max_tokens = 80
    with pytest.raises(RateLimited) as refused:
        await gateway.complete(smaller)
    assert "is $0.0001 this day; $0.000006 spent leaves less" in refused.value.message
    assert refused.value.headers["x-should-retry"] == "false"
    assert 1 <= int(refused.value.headers["Retry-After"]) <= 86400


@pytest.mark.parametrize(("plugin", "config_type", "raw", "named"), [
    ("rate-limit", RateLimitConfig, {"keys": {"rpm": -5}}, "middleware.rate-limit.keys.rpm"),
    ("rate-limit", RateLimitConfig, {"default_output_tokens": -1}, "middleware.rate-limit.default_output_tokens"),
    ("rate-limit", RateLimitConfig, {"on_store_error": "maybe"}, "middleware.rate-limit.on_store_error"),
    ("budget", BudgetConfig, {"orgs": {"budget_usd": -1}}, "middleware.budget.orgs.budget_usd"),
    ("budget", BudgetConfig, {"keys": {"budget_period": "week"}}, "middleware.budget.keys.budget_period"),
])
def test_bad_config_stops_start_up_naming_the_key(plugin: str, config_type: type, raw: dict, named: str) -> None:
    from junction.errors import ConfigError
    from junction.plugins.manager import _validate_config

    with pytest.raises(ConfigError) as error:
        _validate_config("middleware", plugin, config_type, raw)
    assert named in error.value.message


def test_the_prompt_estimate_is_a_quarter_of_the_json_bytes_plus_four_per_message() -> None:
    from junction.schemas.chat import ChatRequest
    from junction.traffic.estimate import estimate_prompt

    request = ChatRequest(model="m", messages=[Message(role="user", content="x" * 400)])
    assert 100 + 4 < estimate_prompt(request) < 100 + 4 + 10  # 400 characters + JSON framing
