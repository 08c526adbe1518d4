"""The ``weighted`` routing policy, the default: one of an alias's deployments drawn by weight,
then its other deployments in the order configured, then the fallbacks. A failed attempt moves
on to the next deployment when its error class is one of ``retry_on``, at most ``max_attempts``
times in all, waiting ``backoff_seconds`` (doubled after each failure, capped) or the upstream's
``Retry-After`` when that is longer and ``honour_retry_after`` is set."""

from app.plugins import MiddlewareSpec, hookimpl
from plugins.middleware.weighted.policy import WeightedConfig, WeightedPolicy


@hookimpl
def register_middleware(register):
    register(MiddlewareSpec(name="weighted", config_type=WeightedConfig, create=WeightedPolicy))
