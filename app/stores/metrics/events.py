"""One row of the usage ledger, as the observe stage builds it and the writer flushes it."""

from __future__ import annotations

import msgspec


class UsageEvent(msgspec.Struct, array_like=True, gc=False):
    """A finished call. Fields are in ``usage_events`` column order (see
    :mod:`junction.stores.metrics.schema`), so a row is ``msgspec.structs.astuple(event)`` with
    ``time`` (epoch seconds here) turned into a datetime by the writer. The observe stage builds
    one per call positionally: with 38 fields, keywords cost it several times more."""

    time: float
    request_id: str
    org_id: str | None
    key_id: str | None
    user_id: str | None
    principal_kind: str
    principal_id: str
    bridge_id: str | None
    bridge_version: int | None
    thread_id: str | None
    endpoint: str
    requested_model: str | None
    provider: str | None
    model: str | None
    deployment: str | None
    attempts: int
    fallback_used: bool
    status: int
    error_class: str | None
    error_code: str | None
    input_tokens: int | None
    output_tokens: int | None
    cached_tokens: int | None
    cache_write_tokens: int | None
    reasoning_tokens: int | None
    cost_usd: float | None
    price_input: float | None
    price_output: float | None
    price_cached_input: float | None
    price_cache_write: float | None
    price_reasoning: float | None
    price_since: str | None
    latency_ms: float
    ttft_ms: float | None
    upstream_ms: float | None
    latency_bucket: int
    cache_hit: bool
    stream: bool
