"""The ``semantic-cache`` plugin (off by default): answers a question from the answer to an
earlier one that means the same, beside the exact ``response-cache``.

* Scoped: only questions of the same org, bridge and published version, model, system prompt,
  earlier turns and parameters are compared (the rendered request, after bridge expansion, with
  the last user message taken out); that message is embedded (``embedding_model``, through the
  gateway's own embeddings path) and compared with the scope's cached questions.
* A hit needs cosine similarity ≥ ``threshold`` **and** the near-miss guard: a cached question
  whose negations (or words of opposite polarity: enable/disable), numbers or named entities
  differ from the new one is refused (``x-junction-semantic-cache-refused: negation|number|entity``).
* ``mode = "shadow"`` serves nothing: it records what it would have served and whether that agreed
  with the fresh answer; ``GET /api/v1/semantic-cache/stats`` reports the measured hit precision.
* Never caches tool-calling turns: a request with tools or tool messages is skipped, and an answer
  that calls a tool is not stored.
* Answers say ``x-junction-semantic-cache: hit | miss | shadow-hit | skip | bypass``;
  ``Cache-Control: no-cache`` or ``no-store`` bypasses it.
"""

from typing import Any

import msgspec
from litestar import Request, get

from junction.errors import InvalidRequest
from junction.middleware.semantic_cache.config import SemanticCacheConfig
from junction.middleware.semantic_cache.stage import SemanticCacheStage
from junction.plugins import MiddlewareSpec, RouteContext, StagePlacement, hookimpl, require_scope

UNCONFINED = frozenset({"master", "anonymous"})


@hookimpl
def register_middleware(register):
    register(MiddlewareSpec(name="semantic-cache", config_type=SemanticCacheConfig, create=SemanticCacheStage,
                            enabled_by_default=False,
                            stage=StagePlacement(phase="cache", after=("response-cache",))))


@hookimpl
def register_routes(register, context: RouteContext):
    stage = context.components.get("semantic-cache")
    if not isinstance(stage, SemanticCacheStage):
        return

    @get("/api/v1/semantic-cache/stats", summary="What the semantic cache served, refused and measured")
    async def stats(request: Request[Any, Any, Any]) -> dict[str, Any]:
        principal = await context.authenticate(request.headers)
        require_scope(principal, "admin")
        org = principal.org_id
        if principal.kind in UNCONFINED:
            org = request.query_params.get("org_id") or request.headers.get("x-junction-org-id")
            if not org:
                raise InvalidRequest("org_id: required when calling with the master key", param="org_id",
                                     code="missing_org_id")
        counts, samples = await stage.store.stats(org or "-")
        shadow = counts.get("shadow_hits", 0)
        return {"org_id": org, "mode": stage.config.mode, "threshold": stage.config.threshold, **counts,
                "hit_precision": round(counts.get("shadow_agreed", 0) / shadow, 4) if shadow else None,
                "samples": msgspec.to_builtins(samples)}

    register(stats)
