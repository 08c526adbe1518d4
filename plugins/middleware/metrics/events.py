"""A finished :class:`~app.plugins.Call` as a usage-ledger row."""

from __future__ import annotations

import time

from app.plugins import Call
from app.pricing import PriceBook
from app.stores.metrics.events import UsageEvent
from app.stores.metrics.schema import latency_bucket


def _text(value: str | None, limit: int = 200) -> str | None:
    """A value as the ledger's column can hold it: clients and upstreams choose some of these
    (a model name, a JWT subject, an error code), and one row PostgreSQL refuses (too long, a NUL
    character) would fail its whole batch."""
    if value is None or (len(value) <= limit and "\x00" not in value):
        return value
    return value.replace("\x00", "")[:limit]


def deployment_of(call: Call) -> str | None:
    """``provider/model`` that answered, else the one tried last, else none (refused early)."""
    if call.deployment is not None:
        return call.deployment
    attempts = call.attempts
    return attempts[-1].deployment if attempts else None


def upstream_ms(call: Call) -> float:
    """Time spent waiting on upstreams: every attempt's, to its end (or, still running, so far)."""
    total = 0.0
    for attempt in call.attempts:
        spent = attempt.latency_ms if attempt.latency_ms is not None else attempt.ttfb_ms
        if spent is not None:
            total += spent
    return total


def usage_event(call: Call, pricing: PriceBook | None) -> UsageEvent:
    outcome = call.outcome
    if outcome is None:  # not a JunctionError: the gateway answers 500
        status, latency, usage, error_class, error_code = 500, call.elapsed_ms(), None, "server_error", None
    else:
        status, latency, usage = outcome.status, outcome.latency_ms, outcome.usage
        error_class, error_code = outcome.error_class, outcome.error_code
    deployment = deployment_of(call)
    provider = model = None
    if deployment is not None:
        provider, _, model = deployment.partition("/")
    priced = pricing.cost(provider, model, usage) if pricing is not None and provider and model else None
    cost, price = priced if priced is not None else (None, None)
    principal = call.principal
    details = usage.prompt_tokens_details if usage is not None else None
    stream = call.stream
    return UsageEvent(
        time=time.time() - latency / 1000,
        request_id=call.request_id,
        org_id=_text(call.org_id),
        key_id=_text(principal.id[4:]) if principal.kind == "key" and principal.id.startswith("key:") else None,
        user_id=_text(principal.user_id),
        principal_kind=principal.kind,
        principal_id=_text(principal.id),
        bridge_id=_text(call.bridge_id),
        bridge_version=call.bridge_version,
        thread_id=_text(call.thread_id),
        endpoint=_text(call.endpoint, 64),
        requested_model=_text(getattr(call.received, "model", None)),
        provider=_text(provider),
        model=_text(model),
        deployment=_text(deployment),
        attempts=len(call.attempts),
        fallback_used=call.fallback_used,
        status=status,
        error_class=_text(error_class, 64),
        error_code=_text(error_code, 64),
        input_tokens=usage.prompt_tokens if usage is not None else None,
        output_tokens=usage.completion_tokens if usage is not None else None,
        cached_tokens=usage.cached_tokens if usage is not None else None,
        cache_write_tokens=(details.cache_creation_tokens or 0) if details is not None else (0 if usage else None),
        reasoning_tokens=usage.reasoning_tokens if usage is not None else None,
        cost_usd=cost,
        price_input=price.input if price is not None else None,
        price_output=price.output if price is not None else None,
        price_cached_input=price.cached_input if price is not None else None,
        price_cache_write=price.cache_write if price is not None else None,
        price_reasoning=price.reasoning if price is not None else None,
        price_since=price.since if price is not None else None,
        latency_ms=latency,
        ttft_ms=call.first_byte_ms if stream else None,
        upstream_ms=upstream_ms(call) if call.attempts else None,
        latency_bucket=latency_bucket(latency),
        cache_hit=call.cache_hit,
        stream=stream,
    )
