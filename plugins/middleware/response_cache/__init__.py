"""The ``response-cache`` plugin (off by default): answers an exact repeat of a chat request from
a cache, in Redis when ``[stores] cache`` is Redis (shared by every worker and node), else in the
process's memory.

* The key is the canonical request after bridge expansion (see ``key.py``): org, bridge and
  version, model and every field that changes the answer; never ``stream``, ``user``, ``metadata``.
* Only complete, successful answers are stored (every choice finished; a stream that reached its
  end), in their unified form, and a hit is replayed as JSON or as a stream, whichever is asked,
  through either ingress. ``call.cache_hit`` is set: budgets charge nothing, request limits count it.
* Concurrent identical misses go upstream once: the first takes a lock with its lookup, the others
  wait for its answer (at most ``single_flight_seconds``) and are released at once when it fails.
* ``Cache-Control: no-cache`` skips the lookup but stores the fresh answer; ``no-store`` skips the
  cache entirely; ``x-junction-cache-ttl: <s>`` sets this answer's TTL (0: do not store).
  Answers say ``x-junction-cache: hit | miss | bypass`` (and ``age`` on a hit).
"""

from junction.middleware.response_cache.config import ResponseCacheConfig
from junction.plugins import MiddlewareSpec, StagePlacement, created_on_demand, hookimpl


@hookimpl
def register_middleware(register):
    register(MiddlewareSpec(name="response-cache", config_type=ResponseCacheConfig,
                            create=created_on_demand("junction.middleware.response_cache.stage:ResponseCacheStage"),
                            enabled_by_default=False, stage=StagePlacement(phase="cache")))
