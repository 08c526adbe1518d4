"""The ``rate-limit`` plugin: requests and tokens per minute per key, org, bridge and model.

Limits come from the key (its principal), the org's and the bridge's documents, else this
plugin's config defaults, and ``models`` in its config. Every limit that applies is checked
and taken at once, atomically, in one Lua script (a sliding-window log, see
:mod:`junction.traffic.windows`), queued on the call's store batch so rate limits, budgets and the
cache lookup cost one Redis round trip before the call. Tokens are reserved as the prompt
estimate plus the output cap, and settled with the real usage after the answer (in the
background; a failed call refunds what it did not use). Response-cache hits count as requests
and use no tokens.
"""

from junction.middleware.rate_limit.config import RateLimitConfig
from junction.plugins import MiddlewareSpec, StagePlacement, created_on_demand, hookimpl


@hookimpl
def register_middleware(register):
    register(MiddlewareSpec(name="rate-limit", config_type=RateLimitConfig,
                            create=created_on_demand("junction.middleware.rate_limit.stage:RateLimitStage"),
                            enabled_by_default=False, stage=StagePlacement(phase="admission")))
