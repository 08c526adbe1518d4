"""The rate-limit headers of an answer on the Anthropic ingress, under Anthropic's names too.

The rate-limit plugin reports its windows as OpenAI does (``x-ratelimit-limit-requests``,
``x-ratelimit-remaining-tokens``, ``x-ratelimit-reset-requests: 59.93s``); Anthropic's API and
the code written against it read ``anthropic-ratelimit-requests-limit``,
``anthropic-ratelimit-tokens-remaining`` and ``anthropic-ratelimit-requests-reset`` (an RFC 3339
time). Both sets go out on ``/v1/messages``: the same windows, so the numbers agree. Junction's
token windows count input and output together, so there are no ``-input-tokens-`` /
``-output-tokens-`` headers.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

_UNITS = ("requests", "tokens")


def with_anthropic_names(headers: Mapping[str, str]) -> dict[str, str]:
    """``headers`` plus the ``anthropic-ratelimit-*`` headers of the ``x-ratelimit-*`` among them
    (``headers`` itself when there are none)."""
    if "x-ratelimit-limit-requests" not in headers and "x-ratelimit-limit-tokens" not in headers:
        return headers if isinstance(headers, dict) else dict(headers)
    added = dict(headers)
    now: datetime | None = None
    for unit in _UNITS:
        limit = headers.get(f"x-ratelimit-limit-{unit}")
        if limit is None:
            continue
        added[f"anthropic-ratelimit-{unit}-limit"] = limit
        added[f"anthropic-ratelimit-{unit}-remaining"] = headers.get(f"x-ratelimit-remaining-{unit}", "0")
        reset = headers.get(f"x-ratelimit-reset-{unit}")
        if reset is not None:
            now = now or datetime.now(UTC)
            seconds = float(reset.removesuffix("s"))
            when = now + timedelta(seconds=seconds)
            if when.microsecond:  # to the next whole second: a client waiting for it is never early
                when = when.replace(microsecond=0) + timedelta(seconds=1)
            added[f"anthropic-ratelimit-{unit}-reset"] = when.isoformat(timespec="seconds").replace("+00:00", "Z")
    return added
