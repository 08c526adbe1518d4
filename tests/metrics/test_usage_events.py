"""A finished call as the metrics stage turns it into a ledger row: the row's cost is what the
price book charges for the call's usage (the builder works it out from the tokens it already
holds, so it must agree with ``ModelPrice.cost`` to the last bit), its texts are bounded, and its
columns say what the call did."""

from __future__ import annotations

import msgspec
import pytest

from junction.middleware.metrics.events import UsageEvents, finished
from junction.plugins import Call, Principal
from junction.plugins.call import Attempt, Outcome
from junction.pricing import ModelPrice, PriceBook
from junction.schemas.chat import ChatRequest, CompletionTokensDetails, PromptTokensDetails, Usage
from junction.stores.metrics.schema import latency_bucket

REQUEST = msgspec.convert({"model": "acme/m", "messages": [{"role": "user", "content": "hi"}]}, ChatRequest)
PRICES = [
    ModelPrice(model="m", input=2.5, output=10.0),
    ModelPrice(model="m", input=3.0, output=15.0, cached_input=0.3, cache_write=3.75, reasoning=12.0,
               since="2025-01-01"),
]
USAGES = [
    Usage(prompt_tokens=11, completion_tokens=7, total_tokens=18),
    Usage(prompt_tokens=1000, completion_tokens=300, total_tokens=1300,
          prompt_tokens_details=PromptTokensDetails(cached_tokens=600, cache_creation_tokens=100),
          completion_tokens_details=CompletionTokensDetails(reasoning_tokens=200)),
    # Details claiming more than the totals (a provider's rounding): fresh tokens stay at 0.
    Usage(prompt_tokens=5, completion_tokens=3, total_tokens=8,
          prompt_tokens_details=PromptTokensDetails(cached_tokens=9),
          completion_tokens_details=CompletionTokensDetails(reasoning_tokens=4)),
    Usage(prompt_tokens=0, completion_tokens=0, total_tokens=0,
          prompt_tokens_details=PromptTokensDetails(), completion_tokens_details=CompletionTokensDetails()),
]


def ended_call(usage: Usage | None, *, status: int = 200, org: str | None = "org-1",
               error_code: str | None = None) -> Call:
    call = Call(request_id="req-1", endpoint="chat.completions", request=REQUEST, org_id=org,
                principal=Principal(id="key:k1", kind="key", scopes=frozenset({"chat"}), user_id="u1"))
    call.deployment = "acme/m"
    call.attempts.append(Attempt(deployment="acme/m", provider="acme", started_ms=0.0, status=status,
                                 ttfb_ms=3.0, latency_ms=4.5))
    call.attempts.append(Attempt(deployment="acme/m", provider="acme", started_ms=5.0, ttfb_ms=1.25))
    call.outcome = Outcome(status=status, latency_ms=12.0, usage=usage,
                           error_class="api_error" if status >= 400 else None, error_code=error_code)
    return call


@pytest.mark.parametrize("price", PRICES)
@pytest.mark.parametrize("usage", USAGES)
def test_cost_is_the_price_books(price, usage):
    book = PriceBook()
    book.add_provider_prices("acme", [price])
    event = UsageEvents(book).build(finished(ended_call(usage)))
    assert event.cost_usd == price.cost(usage)  # exactly: the rollups and budgets sum the same
    assert (event.price_input, event.price_output, event.price_cached_input, event.price_cache_write,
            event.price_reasoning, event.price_since) == (price.input, price.output, price.cached_input,
                                                          price.cache_write, price.reasoning, price.since)
    details = usage.prompt_tokens_details
    assert (event.input_tokens, event.output_tokens, event.cached_tokens, event.cache_write_tokens,
            event.reasoning_tokens) == (usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens,
                                        (details.cache_creation_tokens or 0) if details else 0,
                                        usage.reasoning_tokens)


def test_row_of_a_failed_call_and_its_cached_parts():
    events = UsageEvents(None)  # no price book: the cost is unknown, never $0
    long_org = "o" * 300
    failed = events.build(finished(ended_call(None, status=502, org=long_org, error_code="bad\x00gateway")))
    assert failed.cost_usd is None and failed.price_input is None and failed.input_tokens is None
    assert (failed.status, failed.error_class, failed.error_code) == (502, "api_error", "badgateway")
    assert failed.org_id == "o" * 200  # bounded as the column holds it
    assert (failed.key_id, failed.user_id, failed.principal_id, failed.principal_kind) == ("k1", "u1", "key:k1", "key")
    assert (failed.provider, failed.model, failed.deployment, failed.endpoint, failed.requested_model) == \
        ("acme", "m", "acme/m", "chat.completions", "acme/m")
    assert failed.upstream_ms == 4.5 + 1.25 and failed.attempts == 2
    assert failed.latency_ms == 12.0 and failed.latency_bucket == latency_bucket(12.0)
    # The same caller for another org (a master-key bridge call): its own org, not the cached one.
    other = events.build(finished(ended_call(None, org="org-2")))
    assert other.org_id == "org-2" and other.key_id == "k1"
    assert events.build(finished(ended_call(None, org=None))).org_id is None
