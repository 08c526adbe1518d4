"""What every built-in routing policy shares: the order of fallbacks, and the retry rules.

A policy subclasses :class:`RetryingPolicy` and ranks an alias's primary deployments its own way
(:meth:`RetryingPolicy.rank`: by weight, in-flight calls, latency, price). The rest is common:

* **Order**: the ranked primaries, then the alias's ``fallbacks`` and the bridge's fallback model,
  in the order configured, then the alias's ``context_fallbacks`` (larger context windows); each
  tried ``1 + retries_per_deployment`` times; at most ``max_attempts`` attempts in all.
* **Which failures move on**: an attempt whose error class is in ``retry_on``. An upstream's
  "context length exceeded" (its class is ``context_length_exceeded`` here, detected from the
  upstream's error code or message) skips straight to the context fallbacks. Moving from the
  primaries to the fallbacks also needs the class in the alias's ``fallback_on`` and in the
  bridge's entry of ``bridge_fallback_on``, when set.
* **When**: the next attempt waits an exponential backoff with full jitter
  (``backoff_seconds × 2^(failures-1)``, at most ``max_backoff_seconds``, a random part of it
  when ``jitter``), and at least the upstream's ``Retry-After`` (capped) when the next attempt goes
  to the same deployment and ``honour_retry_after`` is set. No attempt starts after
  ``deadline_seconds`` from the start of the call.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping, Sequence

import msgspec

from junction.errors import ConfigError, error_classes
from junction.plugins.call import Attempt, Call
from junction.plugins.protocols import Deployment, MiddlewareConfig
from junction.plugins.stages import Retry

#: The class this module gives an upstream's "your prompt is longer than my context window".
CONTEXT_LENGTH_EXCEEDED = "context_length_exceeded"
#: What another deployment may well answer: upstream failures (5xx, unreachable, timed out,
#: overloaded) and an upstream's rate limit. A 4xx about the request itself is not retried.
DEFAULT_RETRY_ON = ["upstream_error", "upstream_unavailable", "timeout_error", "overloaded_error",
                    "rate_limit_error"]
#: How providers word a context-length error when their code does not say it (Anthropic: "prompt
#: is too long"; Gemini: "input token count ... exceeds"; OpenAI-compatible: "maximum context length").
_CONTEXT_MESSAGE = re.compile(r"context.length|context.window|prompt is too long|maximum context|"
                              r"input token count.*exceed|too many (input )?tokens", re.IGNORECASE)
_CONTEXT_CODES = frozenset({"context_length_exceeded", "string_above_max_length", "context_window_exceeded"})


class RetryConfig(MiddlewareConfig):
    """The retry rules of a routing policy (its ``[middleware.<name>]`` table)."""

    retry_on: list[str] = msgspec.field(default_factory=lambda: list(DEFAULT_RETRY_ON))
    #: Attempts per call in all; 0 tries every candidate (and its retries) once.
    max_attempts: int = 0
    #: Further attempts of the same deployment before the next one (0: each deployment once).
    retries_per_deployment: int = 0
    #: Wait before the second attempt; doubled before each later one, at most ``max_backoff_seconds``.
    backoff_seconds: float = 0.0
    max_backoff_seconds: float = 10.0
    #: Wait a random part of the backoff (full jitter), so callers that failed together do not
    #: come back together.
    jitter: bool = True
    #: Before retrying the deployment that answered 429/503 with ``Retry-After``, wait at least
    #: that long (capped by ``max_backoff_seconds``).
    honour_retry_after: bool = True
    #: No attempt starts later than this after the call began (0: no deadline).
    deadline_seconds: float = 60.0
    #: Per bridge (by bridge id): the error classes that may move its calls on to their fallbacks
    #: (the alias's and the bridge's ``fallback_model``); like an alias's ``fallback_on``.
    bridge_fallback_on: dict[str, list[str]] = {}


def classify(attempt: Attempt) -> str | None:
    """The attempt's error class, with an upstream's context-length error told apart."""
    if attempt.error_class == "invalid_request_error" and (
            attempt.error_code in _CONTEXT_CODES or _CONTEXT_MESSAGE.search(attempt.error_message or "")):
        return CONTEXT_LENGTH_EXCEEDED
    return attempt.error_class


class _Route:
    """A call's order, kept by the policy (``call.state[_Route]``) to find what comes next."""

    __slots__ = ("order", "position")

    def __init__(self, order: list[Deployment]) -> None:
        self.order = order
        self.position = 0


class RetryingPolicy:
    """Base of the built-in routing policies (see the module docstring)."""

    name = "weighted"

    def __init__(self, config: RetryConfig, aliases: Mapping[str, object] | None = None) -> None:
        known = error_classes() | {CONTEXT_LENGTH_EXCEEDED}
        for index, name in enumerate(config.retry_on):
            if name not in known:
                raise ConfigError(f"middleware.{self.name}.retry_on[{index}]: {name!r} is not an error class "
                                  f"(one of {', '.join(sorted(known))})")
        for key in ("max_attempts", "retries_per_deployment", "backoff_seconds", "max_backoff_seconds",
                    "deadline_seconds"):
            if getattr(config, key) < 0:
                raise ConfigError(f"middleware.{self.name}.{key}: must be at least 0")
        for alias_name, alias in (aliases or {}).items():
            for index, name in enumerate(getattr(alias, "fallback_on", None) or ()):
                if name not in known:
                    raise ConfigError(f"models.{alias_name}.fallback_on[{index}]: {name!r} is not an error class "
                                      f"(one of {', '.join(sorted(known))})")
        for bridge, classes in config.bridge_fallback_on.items():
            for index, name in enumerate(classes):
                if name not in known:
                    raise ConfigError(f"middleware.{self.name}.bridge_fallback_on.{bridge}[{index}]: {name!r} "
                                      "is not an error class")
        self._bridge_fallback_on = {bridge: frozenset(on) for bridge, on in config.bridge_fallback_on.items()}
        self._retry_on = frozenset(config.retry_on)
        self._config = config
        #: The alias's ``fallback_on`` by alias name (only aliases that set it).
        self._fallback_on: dict[str, frozenset[str]] = {
            name: frozenset(on) for name, alias in (aliases or {}).items()
            if (on := getattr(alias, "fallback_on", None)) is not None}

    # --- for subclasses ---------------------------------------------------------------------

    def rank(self, call: Call, primary: list[Deployment]) -> list[Deployment]:
        """The primary deployments (two or more), first choice first."""
        return primary

    # --- RoutingPolicy ----------------------------------------------------------------------

    async def order(self, call: Call, candidates: Sequence[Deployment]) -> Sequence[Deployment]:
        config = self._config
        if len(candidates) == 1 and not config.retries_per_deployment:
            return candidates  # a provider/model: nothing to rank, repeat or cut
        primary = [d for d in candidates if not d.fallback]
        if len(primary) > 1:
            primary = self.rank(call, primary)
        ranked = primary + [d for d in candidates if d.fallback and not d.context_fallback]
        ranked += [d for d in candidates if d.context_fallback]
        repeat = 1 + config.retries_per_deployment
        ordered = [d for d in ranked for _ in range(repeat)]
        if config.max_attempts:
            del ordered[config.max_attempts:]
        call.state[_Route] = _Route(ordered)
        return ordered

    async def attempted(self, call: Call, attempt: Attempt) -> Retry | None:
        route = call.state.get(_Route)
        if route is not None:
            route.position += 1
        if attempt.ok:
            return None
        error_class = classify(attempt)
        skip = 0
        if error_class == CONTEXT_LENGTH_EXCEEDED and route is not None:
            rest = route.order[route.position:]
            larger = next((i for i, d in enumerate(rest) if d.context_fallback), None)
            if larger is not None:
                skip = larger
            elif error_class not in self._retry_on:
                return None
        elif error_class not in self._retry_on:
            return None
        elif route is not None and not self._may_fall_back(call, route, error_class):
            return None
        delay = self._delay(call, attempt, route, skip)
        config = self._config
        if config.deadline_seconds and call.elapsed_ms() / 1000 + delay >= config.deadline_seconds:
            return None
        if route is not None:
            route.position += skip
        return Retry(delay=delay, skip=skip)

    def _may_fall_back(self, call: Call, route: _Route, error_class: str | None) -> bool:
        """Leaving the primaries for the fallbacks needs the class in the alias's ``fallback_on``
        (and the bridge's entry of ``bridge_fallback_on``), when set."""
        allowed = self._fallback_on.get(call.request.model)
        if call.bridge_id is not None and call.bridge_id in self._bridge_fallback_on:
            bridge = self._bridge_fallback_on[call.bridge_id]
            allowed = bridge if allowed is None else allowed & bridge
        if allowed is None or route.position >= len(route.order):
            return True
        previous, following = route.order[route.position - 1], route.order[route.position]
        if following.fallback and not previous.fallback:
            return error_class in allowed
        return True

    def _delay(self, call: Call, attempt: Attempt, route: _Route | None, skip: int) -> float:
        config = self._config
        failures = sum(1 for earlier in call.attempts if not earlier.ok)
        delay = config.backoff_seconds * 2 ** (failures - 1) if config.backoff_seconds else 0.0
        delay = min(delay, config.max_backoff_seconds)
        if config.jitter and delay:
            delay = random.uniform(0, delay)
        if config.honour_retry_after and attempt.retry_after and route is not None:
            following = route.order[route.position + skip] if route.position + skip < len(route.order) else None
            if following is not None and following.label == attempt.deployment:
                delay = max(delay, min(attempt.retry_after, config.max_backoff_seconds))
        return delay
