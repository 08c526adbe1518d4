"""The Anthropic ingress's rate-limit headers under Anthropic's names: the same windows, the
reset as an RFC 3339 time rounded up to a whole second (a client that waits for it is never early)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from junction.formats.anthropic.rate_limit_headers import with_anthropic_names


def test_each_window_is_named_as_anthropic_names_it() -> None:
    before = datetime.now(UTC)
    headers = with_anthropic_names({"x-ratelimit-limit-requests": "20", "x-ratelimit-remaining-requests": "3",
                                    "x-ratelimit-reset-requests": "12.3s", "x-ratelimit-limit-tokens": "9000",
                                    "x-ratelimit-remaining-tokens": "0", "x-ratelimit-reset-tokens": "0s",
                                    "x-junction-cache": "miss"})
    assert headers["anthropic-ratelimit-requests-limit"] == "20"
    assert headers["anthropic-ratelimit-requests-remaining"] == "3"
    assert headers["anthropic-ratelimit-tokens-limit"] == "9000"
    assert headers["anthropic-ratelimit-tokens-remaining"] == "0"
    assert headers["x-junction-cache"] == "miss" and headers["x-ratelimit-limit-requests"] == "20"
    reset = datetime.fromisoformat(headers["anthropic-ratelimit-requests-reset"].replace("Z", "+00:00"))
    assert headers["anthropic-ratelimit-requests-reset"].endswith("Z") and reset.microsecond == 0
    assert before + timedelta(seconds=12.3) <= reset <= datetime.now(UTC) + timedelta(seconds=13.3)


def test_without_a_limit_nothing_is_added() -> None:
    plain = {"x-junction-cache": "hit"}
    assert with_anthropic_names(plain) == {"x-junction-cache": "hit"}
    only_requests = with_anthropic_names({"x-ratelimit-limit-requests": "5", "x-ratelimit-remaining-requests": "4",
                                          "x-ratelimit-reset-requests": "60s"})
    assert not any(name.startswith("anthropic-ratelimit-tokens") for name in only_requests)
