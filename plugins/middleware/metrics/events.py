"""A finished :class:`~junction.plugins.Call` as a usage-ledger row."""

from __future__ import annotations

import time
from typing import Any

from junction.plugins import Call, Principal
from junction.pricing import PriceBook
from junction.stores.metrics.events import UsageEvent
from junction.stores.metrics.schema import latency_bucket


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


#: Bounds of the builder's caches: known deployments and callers repeat; names a client
#: chooses must not pile up.
_CACHED = 4096


class UsageEvents:
    """Builds a finished call's ledger row. What repeats from call to call (the deployment's
    provider, model and price; the caller's ids) is worked out once and kept, so a row costs
    little more than its construction."""

    def __init__(self, pricing: PriceBook | None) -> None:
        self._pricing = pricing
        self._deployments: dict[str | None, tuple[str | None, str | None, str | None, Any]] = {}
        self._principals: dict[tuple[str, str | None, str], tuple[str | None, str | None, str]] = {}

    def _deployment(self, deployment: str | None) -> tuple[str | None, str | None, str | None, Any]:
        """``(provider, model, deployment, price)`` of a ``provider/model``."""
        known = self._deployments.get(deployment)
        if known is None:
            provider = model = price = None
            if deployment is not None:
                provider, _, model = deployment.partition("/")
                if self._pricing is not None and provider and model:
                    price = self._pricing.price_or_default(provider, model)
            known = (_text(provider), _text(model), _text(deployment), price)
            if len(self._deployments) < _CACHED:
                self._deployments[deployment] = known
        return known

    def _principal(self, principal: Principal) -> tuple[str | None, str | None, str]:
        """``(key id, user id, principal id)`` as the ledger holds them."""
        cache_key = (principal.id, principal.user_id, principal.kind)
        known = self._principals.get(cache_key)
        if known is None:
            key_id = principal.id[4:] if principal.kind == "key" and principal.id.startswith("key:") else None
            known = (_text(key_id), _text(principal.user_id), _text(principal.id) or "")
            if len(self._principals) < _CACHED:
                self._principals[cache_key] = known
        return known

    def build(self, call: Call) -> UsageEvent:
        outcome = call.outcome
        if outcome is None:  # not a JunctionError: the gateway answers 500
            status, latency, usage, error_class, error_code = 500, call.elapsed_ms(), None, "server_error", None
        else:
            status, latency, usage = outcome.status, outcome.latency_ms, outcome.usage
            error_class, error_code = outcome.error_class, outcome.error_code
        attempts = call.attempts
        deployment = call.deployment
        if deployment is None and attempts:
            deployment = attempts[-1].deployment
        provider, model, deployment_text, price = self._deployment(deployment)
        principal = call.principal
        key_id, user_id, principal_id = self._principal(principal)
        stream = call.stream
        if usage is not None:
            details = usage.prompt_tokens_details
            input_tokens, output_tokens = usage.prompt_tokens, usage.completion_tokens
            cached, reasoning = usage.cached_tokens, usage.reasoning_tokens
            cache_write = (details.cache_creation_tokens or 0) if details is not None else 0
        else:
            input_tokens = output_tokens = cached = reasoning = cache_write = None
        priced = price is not None and usage is not None
        return UsageEvent(  # positionally, in column order (keywords cost several times more)
            time.time() - latency / 1000,  # time
            call.request_id,  # request_id
            _text(call.org_id),  # org_id
            key_id,  # key_id
            user_id,  # user_id
            principal.kind,  # principal_kind
            principal_id,  # principal_id
            _text(call.bridge_id),  # bridge_id
            call.bridge_version,  # bridge_version
            _text(call.thread_id),  # thread_id
            _text(call.endpoint, 64),  # endpoint
            _text(getattr(call.received, "model", None)),  # requested_model
            provider,  # provider
            model,  # model
            deployment_text,  # deployment
            len(attempts),  # attempts
            call.fallback_used,  # fallback_used
            status,  # status
            _text(error_class, 64),  # error_class
            _text(error_code, 64),  # error_code
            input_tokens,  # input_tokens
            output_tokens,  # output_tokens
            cached,  # cached_tokens
            cache_write,  # cache_write_tokens
            reasoning,  # reasoning_tokens
            price.cost(usage) if priced else None,  # cost_usd
            price.input if priced else None,  # price_input
            price.output if priced else None,  # price_output
            price.cached_input if priced else None,  # price_cached_input
            price.cache_write if priced else None,  # price_cache_write
            price.reasoning if priced else None,  # price_reasoning
            price.since if priced else None,  # price_since
            latency,  # latency_ms
            call.first_byte_ms if stream else None,  # ttft_ms
            upstream_ms(call) if attempts else None,  # upstream_ms
            latency_bucket(latency),  # latency_bucket
            call.cache_hit,  # cache_hit
            stream,  # stream
        )
