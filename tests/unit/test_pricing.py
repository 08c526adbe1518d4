"""The price table: what each built-in provider ships, config overrides, dated prices, and the
cost of a usage record with cached, cache-written and reasoning tokens."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from junction.errors import ConfigError
from junction.plugins.manager import load_plugins
from junction.plugins.protocols import PluginContext
from junction.pricing import ModelPrice, PriceBook, PriceSettings, PricingSettings
from junction.schemas.chat import CompletionTokensDetails, PromptTokensDetails, Usage
from junction.settings import settings_from_mapping

BUILT_IN_PROVIDERS = ("anthropic", "gemini", "groq", "mistral", "openai", "openrouter")


def loaded_book(raw: dict | None = None) -> PriceBook:
    settings = settings_from_mapping({"auth": {"disabled": True}, **(raw or {})})
    book = PriceBook(settings.pricing)
    load_plugins(settings, instantiate=False, context=PluginContext(settings=settings, pricing=book))
    return book


def test_every_built_in_provider_ships_prices_that_the_plugin_manager_loads() -> None:
    book = loaded_book()
    providers = {label.split("/", 1)[0] for label in book.known()}
    assert providers == set(BUILT_IN_PROVIDERS)
    price = book.price("openai", "gpt-4o-mini")
    assert price is not None and (price.input, price.output) == (0.15, 0.60)


def test_dated_and_latest_model_ids_are_priced_as_their_family_but_no_looser_prefix() -> None:
    book = loaded_book()
    assert book.price("openai", "gpt-4o-2024-08-06") == book.price("openai", "gpt-4o")
    assert book.price("anthropic", "claude-sonnet-4-5-20250929") == book.price("anthropic", "claude-sonnet-4-5")
    assert book.price("mistral", "mistral-large-latest") == book.price("mistral", "mistral-large")
    assert book.price("openai", "gpt-4o-audio-preview") is None
    assert book.price("nobody", "gpt-4o") is None


def test_config_overrides_the_shipped_price_and_prices_new_models() -> None:
    book = loaded_book({"pricing": {"models": {"openai/gpt-4o": {"input": 1.0, "output": 2.0},
                                               "openai/my-finetune": {"input": 3.0, "output": 4.0}}}})
    assert book.price("openai", "gpt-4o").input == 1.0
    assert book.price("openai", "my-finetune").output == 4.0


def test_the_newest_price_already_in_effect_wins() -> None:
    book = PriceBook()
    tomorrow = (date.today() + timedelta(days=1)).isoformat()
    book.add_provider_prices("acme", [ModelPrice(model="m", input=1, output=1, since="2024-01-01"),
                                      ModelPrice(model="m", input=2, output=2, since="2025-01-01"),
                                      ModelPrice(model="m", input=3, output=3, since=tomorrow)])
    assert book.price("acme", "m").input == 2


def test_cost_splits_cached_cache_written_and_reasoning_tokens() -> None:
    price = ModelPrice(model="m", input=2.0, output=10.0, cached_input=0.5, cache_write=2.5, reasoning=20.0)
    usage = Usage(prompt_tokens=1_000, completion_tokens=600, total_tokens=1_600,
                  prompt_tokens_details=PromptTokensDetails(cached_tokens=300, cache_creation_tokens=200),
                  completion_tokens_details=CompletionTokensDetails(reasoning_tokens=100))
    expected = (500 * 2.0 + 300 * 0.5 + 200 * 2.5 + 500 * 10.0 + 100 * 20.0) / 1_000_000
    assert price.cost(usage) == pytest.approx(expected)
    plain = ModelPrice(model="m", input=2.0, output=10.0)  # unset prices fall back to input/output
    assert plain.cost(usage) == pytest.approx((1_000 * 2.0 + 600 * 10.0) / 1_000_000)


def test_an_unpriced_model_costs_nothing_known_unless_a_default_is_configured() -> None:
    usage = Usage(prompt_tokens=10, completion_tokens=10, total_tokens=20)
    assert PriceBook().cost("acme", "m", usage) is None
    charged = PriceBook(PricingSettings(unpriced="default", default=PriceSettings(input=1.0, output=1.0)))
    usd, price = charged.cost("acme", "m", usage)
    assert usd == pytest.approx(20 / 1_000_000) and price.model == "*"


@pytest.mark.parametrize(("raw", "message"), [
    ({"unpriced": "default"}, "pricing.default: must be set"),
    ({"models": {"gpt-4o": {"input": 1, "output": 1}}}, "pricing.models.gpt-4o: must be named provider/model"),
    ({"models": {"openai/x": {"input": 1, "output": 1, "since": "last year"}}}, "pricing.models.openai/x.since"),
    ({"models": {"openai/x": {"input": 1}}}, "pricing.models"),
    ({"unpriced": "free"}, "pricing.unpriced"),
    # A negative rate paid budgets back for every call; an infinite one (1e400 in TOML) refused all.
    ({"models": {"openai/x": {"input": -1.0, "output": 1}}}, "pricing.models.openai/x.input: must be a finite number"),
    ({"default": {"input": 1, "output": float("inf")}}, "pricing.default.output: must be a finite number"),
    ({"models": {"openai/x": {"input": 1, "output": 1, "reasoning": float("nan")}}},
     "pricing.models.openai/x.reasoning: must be a finite number"),
])
def test_bad_pricing_config_is_a_start_up_error_naming_the_key(raw: dict, message: str) -> None:
    from junction.runtime import Runtime

    with pytest.raises(ConfigError, match=message.replace(".", r"\.").replace("/", "/")):
        Runtime(settings_from_mapping({"auth": {"disabled": True}, "pricing": raw}), with_plugins=False)
