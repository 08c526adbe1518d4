"""The ``weighted`` routing policy, the default: one of an alias's deployments drawn by weight,
then its other deployments in the order configured, then the fallbacks. Its retry rules
(``retry_on``, ``max_attempts``, ``retries_per_deployment``, backoff with jitter, ``Retry-After``,
``deadline_seconds``) are those every built-in policy shares: see :mod:`junction.routing.retries`."""

from junction.middleware.weighted.policy import WeightedConfig, WeightedPolicy
from junction.plugins import MiddlewareSpec, hookimpl


@hookimpl
def register_middleware(register):
    register(MiddlewareSpec(name="weighted", config_type=WeightedConfig, create=WeightedPolicy))
