"""The ``cost-first`` routing policy: an alias's cheapest deployment first, by the price table
(``[pricing]`` and the providers' ``prices.toml``): input plus output USD per million tokens, the
output weighted by ``output_weight``; a deployment without a price goes last; equal prices keep
the configured order. Then the fallbacks, with the shared retry rules (:mod:`junction.routing.retries`).
"""

from __future__ import annotations

import math

from junction.plugins import Call, Deployment, MiddlewareSpec, PluginContext, hookimpl
from junction.pricing import PriceBook
from junction.routing.retries import RetryConfig, RetryingPolicy


class CostFirstConfig(RetryConfig):
    #: How much an output token weighs against an input token when comparing prices (answers are
    #: usually shorter than prompts, but output costs more per token).
    output_weight: float = 1.0


class CostFirst(RetryingPolicy):
    name = "cost-first"

    def __init__(self, config: CostFirstConfig, context: PluginContext | None = None) -> None:
        super().__init__(config, context.settings.models if context is not None else None)
        self.book = (context.pricing if context is not None else None) or PriceBook()
        self.output_weight = config.output_weight

    def price_of(self, deployment: Deployment) -> float:
        price = self.book.price_or_default(deployment.provider_name, deployment.target.model)
        return math.inf if price is None else price.input + price.output * self.output_weight

    def rank(self, call: Call, primary: list[Deployment]) -> list[Deployment]:
        return sorted(primary, key=self.price_of)


@hookimpl
def register_middleware(register):
    register(MiddlewareSpec(name="cost-first", config_type=CostFirstConfig, create=CostFirst))
