"""The ``circuit-breaker`` plugin (off by default): a breaker per deployment (``provider/model``),
usable with any routing policy, shared by every worker and node through Redis when ``[stores]
cache`` is Redis (in-process otherwise).

* **Closed**: attempts go through; each failure of a class in ``failure_classes`` (5xx,
  unreachable, timeout, overloaded, 429 by default — never a 4xx about the request) is counted.
  ``failure_threshold`` failures within ``window_seconds`` open it.
* **Open** for ``open_seconds``: attempts to the deployment are refused at once with 503
  ``overloaded_error``, code ``circuit_open`` and ``Retry-After``, so the routing policy moves on
  to the next deployment (the refusal is an attempt, with that code).
* **Half-open**: one attempt (anywhere) probes; success closes the breaker, failure opens it
  again. Other attempts are refused while the probe runs (at most ``probe_seconds``).

Each worker trusts what it last heard of a closed breaker for ``refresh_seconds``: a healthy
deployment costs one Redis round trip per second per worker, not one per call; a failure is one
script call that counts it and answers the new state. Redis slow or down: ``on_store_error``
(``open``: no breaker, attempts go through; ``closed``: 503 ``store_unavailable``), with the
plugin's own timeout and store breaker.
"""

from junction.middleware.circuit_breaker.config import CircuitBreakerConfig
from junction.plugins import MiddlewareSpec, StagePlacement, created_on_demand, hookimpl


@hookimpl
def register_middleware(register):
    register(MiddlewareSpec(name="circuit-breaker", config_type=CircuitBreakerConfig,
                            create=created_on_demand("junction.middleware.circuit_breaker.stage:CircuitBreakerStage"),
                            enabled_by_default=False, stage=StagePlacement(phase="route")))
