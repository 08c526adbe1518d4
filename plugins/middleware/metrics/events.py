"""A finished :class:`~junction.plugins.Call` as the metrics stage keeps it, and as a usage-ledger row."""

from __future__ import annotations

import time
from typing import Any

from junction.plugins import Attempt, Call, Outcome
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


#: A finished call as the metrics stage keeps it until its next drain: a plain tuple of what
#: the call already holds, since building it is all a call pays. In order: ``finished`` (epoch
#: seconds it ended), ``latency`` (ms, the outcome's, or without one the time so far),
#: ``outcome`` (``None``: not a JunctionError, the gateway answers 500), ``deployment`` (that
#: answered, else tried last, else ``None``), ``attempts``, ``request_id``, ``org_id``,
#: ``caller`` (the principal's id, user id and kind), ``bridge_id``, ``bridge_version``,
#: ``thread_id``, ``endpoint``, ``requested_model`` (as the client sent it), ``fallback_used``,
#: ``first_byte_ms``, ``cache_hit``, ``stream``. Plain data and msgspec Structs only: a batch of
#: them crosses to the usage relay as they are (see relay.py).
Finished = tuple[float, float, Outcome | None, str | None, list[Attempt], str, str | None,
                 tuple[str, str | None, str], str | None, int | None, str | None, str, str | None, bool,
                 float | None, bool, bool]


def finished(call: Call) -> Finished:
    outcome = call.outcome
    deployment = call.deployment
    attempts = call.attempts
    principal = call.principal
    if deployment is None and attempts:
        deployment = attempts[-1].deployment
    return (time.time(), outcome.latency_ms if outcome is not None else call.elapsed_ms(), outcome, deployment,
            attempts, call.request_id, call.org_id, (principal.id, principal.user_id, principal.kind),
            call.bridge_id, call.bridge_version,
            call.thread_id, call.endpoint, getattr(call.received, "model", None), call.fallback_used,
            call.first_byte_ms, call.cache_hit, call.stream)


def upstream_ms(attempts: list[Attempt]) -> float:
    """Time spent waiting on upstreams: every attempt's, to its end (or, still running, so far)."""
    total = 0.0
    for attempt in attempts:
        spent = attempt.latency_ms if attempt.latency_ms is not None else attempt.ttfb_ms
        if spent is not None:
            total += spent
    return total


#: Bounds of the builder's caches: known deployments and callers repeat; names a client
#: chooses must not pile up.
_CACHED = 4096


#: ``(deployment, endpoint, model asked for)``, and what the ledger's columns hold of them:
#: ``(provider, model, deployment, price, endpoint, requested model, the price's six columns)``.
_RouteKey = tuple[str | None, str, str | None]
_Route = tuple[str | None, str | None, str | None, Any, str, str | None, tuple[Any, ...]]
#: The price columns of a call whose cost is unknown.
_NO_PRICE = (None,) * 6
#: ``(key id, user id, principal id, org id)`` as the ledger holds them.
_Ids = tuple[str | None, str | None, str, str | None]


class UsageEvents:
    """Builds a finished call's ledger row. What repeats from call to call is worked out once and
    kept: per (deployment, endpoint, model asked for) the provider, model, price and the columns'
    texts; per (caller, org) their ids. So a row costs little more than its construction: this
    runs once per call on the serving worker (a few µs were a fifth of the plugin's cost)."""

    def __init__(self, pricing: PriceBook | None) -> None:
        self._pricing = pricing
        self._deployments: dict[str | None, tuple[str | None, str | None, str | None, Any]] = {}
        self._routes: dict[_RouteKey, _Route] = {}
        self._principals: dict[tuple[str, str | None, str, str | None], _Ids] = {}

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

    def _route(self, key: _RouteKey) -> _Route:
        """``(provider, model, deployment, price, endpoint, requested model)`` as the ledger holds
        them, of a ``(deployment, endpoint, requested model)``."""
        known = self._routes.get(key)
        if known is None:
            deployment, endpoint, requested_model = key
            provider, model, deployment_text, price = self._deployment(deployment)
            columns = _NO_PRICE if price is None else (price.input, price.output, price.cached_input,
                                                       price.cache_write, price.reasoning, price.since)
            known = (provider, model, deployment_text, price, _text(endpoint, 64) or "", _text(requested_model),
                     columns)
            if len(self._routes) < _CACHED:
                self._routes[key] = known
        return known

    def _principal(self, key: tuple[str, str | None, str, str | None]) -> _Ids:
        """``(key id, user id, principal id, org id)`` as the ledger holds them, of a ``(principal
        id, user id, kind, org id)``."""
        known = self._principals.get(key)
        if known is None:
            principal_id, user_id, kind, org_id = key
            key_id = principal_id[4:] if kind == "key" and principal_id.startswith("key:") else None
            known = (_text(key_id), _text(user_id), _text(principal_id) or "", _text(org_id))
            if len(self._principals) < _CACHED:
                self._principals[key] = known
        return known

    def cost(self, call: Finished) -> float | None:
        """The call's cost in USD, when its usage and price are known (as :meth:`build` records it)."""
        outcome = call[2]
        usage = outcome.usage if outcome is not None else None
        if usage is None:
            return None
        price = self._deployment(call[3])[3]
        return price.cost(usage) if price is not None else None

    def build(self, call: Finished) -> UsageEvent:
        (finished_at, latency, outcome, deployment, attempts, request_id, org_id, caller, bridge_id,
         bridge_version, thread_id, endpoint, requested_model, fallback_used, first_byte_ms, cache_hit,
         stream) = call
        # The caches' hits inline (a method call per lookup was a tenth of this), their misses below.
        route_key = (deployment, endpoint, requested_model)
        route = self._routes.get(route_key) or self._route(route_key)
        principal_key = (*caller, org_id)
        ids = self._principals.get(principal_key) or self._principal(principal_key)
        if outcome is None:
            status, usage, error_class, error_code = 500, None, "server_error", None
        else:
            status, usage = outcome.status, outcome.usage
            error_class, error_code = outcome.error_class, outcome.error_code
            if error_class is not None:
                error_class = _text(error_class, 64)
            if error_code is not None:
                error_code = _text(error_code, 64)
        price = route[3]
        if usage is not None:
            input_tokens, output_tokens = usage.prompt_tokens, usage.completion_tokens
            cached, reasoning = usage.cached_tokens, usage.reasoning_tokens
            details = usage.prompt_tokens_details
            cache_write = (details.cache_creation_tokens or 0) if details is not None else 0
            cost = None if price is None else price.tokens_cost(input_tokens, output_tokens, cached, cache_write,
                                                                reasoning)
        else:
            input_tokens = output_tokens = cached = reasoning = cache_write = cost = None
        prices = route[6] if cost is not None else _NO_PRICE
        return UsageEvent(  # positionally, in column order (keywords cost several times more)
            finished_at - latency / 1000,  # time
            request_id,  # request_id
            ids[3],  # org_id
            ids[0],  # key_id
            ids[1],  # user_id
            caller[2],  # principal_kind
            ids[2],  # principal_id
            None if bridge_id is None else _text(bridge_id),  # bridge_id
            bridge_version,  # bridge_version
            None if thread_id is None else _text(thread_id),  # thread_id
            route[4],  # endpoint
            route[5],  # requested_model
            route[0],  # provider
            route[1],  # model
            route[2],  # deployment
            len(attempts),  # attempts
            fallback_used,  # fallback_used
            status,  # status
            error_class,  # error_class
            error_code,  # error_code
            input_tokens,  # input_tokens
            output_tokens,  # output_tokens
            cached,  # cached_tokens
            cache_write,  # cache_write_tokens
            reasoning,  # reasoning_tokens
            cost,  # cost_usd
            *prices,  # price_input, price_output, price_cached_input, price_cache_write, price_reasoning, price_since
            latency,  # latency_ms
            first_byte_ms if stream else None,  # ttft_ms
            upstream_ms(attempts) if attempts else None,  # upstream_ms
            latency_bucket(latency),  # latency_bucket
            cache_hit,  # cache_hit
            stream,  # stream
        )
