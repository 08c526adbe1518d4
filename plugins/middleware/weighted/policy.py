"""The weighted routing policy (see the package docstring); its retry rules are the shared ones of
:mod:`junction.routing.retries`."""

from __future__ import annotations

import random

from junction.plugins import Deployment, PluginContext
from junction.plugins.call import Call
from junction.routing.retries import DEFAULT_RETRY_ON, RetryConfig, RetryingPolicy

__all__ = ["DEFAULT_RETRY_ON", "WeightedConfig", "WeightedPolicy"]


class WeightedConfig(RetryConfig):
    """``[middleware.weighted]``: the retry rules (see :class:`~junction.routing.retries.RetryConfig`)."""


class WeightedPolicy(RetryingPolicy):
    name = "weighted"

    def __init__(self, config: WeightedConfig, context: PluginContext | None = None) -> None:
        super().__init__(config, context.settings.models if context is not None else None)

    def rank(self, call: Call, primary: list[Deployment]) -> list[Deployment]:
        first = random.choices(range(len(primary)), weights=[d.weight for d in primary])[0]
        primary.insert(0, primary.pop(first))
        return primary
