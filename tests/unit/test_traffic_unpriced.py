"""The unpriced policy where a budget applies: ``refuse`` (403 ``model_unpriced``) or
``default`` (reserve and charge ``[pricing] default``); an alias reserves at its dearest
deployment."""

from __future__ import annotations

import pytest

from junction.errors import PermissionDenied
from junction.middleware.budget.config import BudgetConfig
from junction.middleware.budget.stage import BudgetStage
from junction.plugins import PluginContext, Principal
from junction.pricing import ModelPrice, PriceBook, PriceSettings, PricingSettings
from junction.settings import settings_from_mapping
from junction.traffic.limits import Limits
from tests.unit.pipeline_kit import build_gateway, chat_call

BUDGET = {"budget_usd": 1.0, "budget_period": "day"}
WHO = Principal(id="key:unpriced", kind="key", scopes=frozenset({"chat"}), **BUDGET)


def stage(unpriced: str, aliases: dict | None = None) -> BudgetStage:
    default = PriceSettings(input=1000.0, output=1000.0) if unpriced == "default" else None
    book = PriceBook(PricingSettings(unpriced=unpriced, default=default))  # type: ignore[arg-type]
    book.add_provider_prices("scripted", [ModelPrice(model="cheap", input=1.0, output=1.0)])
    settings = settings_from_mapping({"auth": {"master_key": "unused"}, "models": aliases or {}})
    return BudgetStage(BudgetConfig(), PluginContext(settings=settings, pricing=book))


async def test_refuse_policy_refuses_an_unpriced_model_where_a_budget_applies() -> None:
    budget = stage("refuse")
    with pytest.raises(PermissionDenied) as refused:
        await build_gateway([budget]).complete(chat_call("scripted/ok", principal=WHO))
    assert refused.value.code == "model_unpriced" and refused.value.param == "model"


async def test_default_policy_charges_the_default_price() -> None:
    budget = stage("default")
    call = chat_call("scripted/ok", principal=WHO)
    call.request.max_tokens = 10  # the default output reservation at $1000 a million exceeds $1
    await build_gateway([budget]).complete(call)
    report = (await budget.usage("key", WHO.id, Limits(**BUDGET))).budget
    # "scripted/ok: hello world": 3 prompt + 3 completion tokens at $1000 a million.
    assert report is not None and report.spent_usd == pytest.approx(6 * 1000 / 1e6)


async def test_an_alias_reserves_at_its_dearest_deployment_and_refuses_if_one_is_unpriced() -> None:
    aliases = {"mixed": {"deployments": [{"model": "scripted/cheap"}, {"model": "scripted/ok"}]}}
    with pytest.raises(PermissionDenied):
        await build_gateway([stage("refuse", aliases)], aliases=aliases).complete(
            chat_call("mixed", principal=WHO))
