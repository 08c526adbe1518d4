"""A small usage data set whose totals are worked out by hand, for the analytics tests.

Two orgs; times on 2026-01-05 and 2026-01-06 (UTC). ``E[...]`` comments give each event's number.

    #  org  key  provider/model       time (UTC)        status  in    out  cost       latency cache
    1  A    a1   openai/gpt-4o        01-05 10:00:10    200     100   50   0.00075    100     no
    2  A    a1   openai/gpt-4o        01-05 10:00:50    200     200   100  0.0015     300     yes
    3  A    a2   anthropic/claude-x   01-05 10:01:30    502     -     -    unknown    50      no
    4  A    a2   anthropic/claude-x   01-05 11:15:00    200     1000  10   unknown    1000    no
    5  B    b1   openai/gpt-4o        01-05 10:00:20    200     10    10   0.000125   20      no
    6  B    b1   (refused, no model)  01-06 09:00:00    429     -     -    unknown    1       no
"""

from __future__ import annotations

from datetime import UTC, datetime

from junction.stores.metrics.events import UsageEvent
from junction.stores.metrics.schema import latency_bucket

#: The whole data set's range (UTC).
D5_D7 = (datetime(2026, 1, 5, tzinfo=UTC), datetime(2026, 1, 7, tzinfo=UTC))


def _at(day: int, hour: int, minute: int, second: int) -> float:
    return datetime(2026, 1, day, hour, minute, second, tzinfo=UTC).timestamp()


def event(org: str, key: str, deployment: str | None, time: float, status: int, tokens: tuple[int, int] | None,
          cost: float | None, latency: float, cache_hit: bool = False, code: str | None = None) -> UsageEvent:
    provider, _, model = deployment.partition("/") if deployment else (None, "", None)
    return UsageEvent(
        time=time, request_id=f"req-{time}-{key}", org_id=org, key_id=key, user_id=None, principal_kind="key",
        principal_id=f"key:{key}", bridge_id=None, bridge_version=None, thread_id=None, endpoint="chat.completions",
        requested_model=deployment, provider=provider, model=model or None, deployment=deployment,
        attempts=1 if deployment else 0, fallback_used=False, status=status,
        error_class=None if status == 200 else "upstream_error", error_code=code,
        input_tokens=tokens[0] if tokens else None, output_tokens=tokens[1] if tokens else None,
        cached_tokens=0 if tokens else None, cache_write_tokens=0 if tokens else None,
        reasoning_tokens=0 if tokens else None, cost_usd=cost,
        price_input=2.5 if cost is not None else None, price_output=10.0 if cost is not None else None,
        price_cached_input=None, price_cache_write=None, price_reasoning=None,
        price_since="2024-10-01" if cost is not None else None,
        latency_ms=latency, ttft_ms=None, upstream_ms=latency if deployment else None,
        latency_bucket=latency_bucket(latency), cache_hit=cache_hit, stream=False)


def seeded(org_a: str = "org-a", org_b: str = "org-b") -> list[UsageEvent]:
    return [
        event(org_a, "a1", "openai/gpt-4o", _at(5, 10, 0, 10), 200, (100, 50), 0.00075, 100),
        event(org_a, "a1", "openai/gpt-4o", _at(5, 10, 0, 50), 200, (200, 100), 0.0015, 300, cache_hit=True),
        event(org_a, "a2", "anthropic/claude-x", _at(5, 10, 1, 30), 502, None, None, 50),
        event(org_a, "a2", "anthropic/claude-x", _at(5, 11, 15, 0), 200, (1000, 10), None, 1000),
        event(org_b, "b1", "openai/gpt-4o", _at(5, 10, 0, 20), 200, (10, 10), 0.000125, 20),
        event(org_b, "b1", None, _at(6, 9, 0, 0), 429, None, None, 1, code="rate_limit_exceeded"),
    ]
