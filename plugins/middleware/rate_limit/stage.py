"""The rate-limit stage: check and take every window that applies before the call, settle the
token windows with the real usage after it.

What a caller's limits make (the windows, their Redis keys, the admission script's call packed
once) is a :class:`RatePlan`, kept per caller, org, bridge and model
(:class:`~junction.traffic.limits.Plans`): a call only adds its id and token estimate."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from junction.errors import SHOULD_RETRY, RateLimited
from junction.middleware.rate_limit.config import RateLimitConfig, ScopeLimits
from junction.plugins import Call, PluginContext
from junction.plugins.call import CLIENT_CLOSED
from junction.plugins.store_batch import SAME
from junction.plugins.store_guard import StoreUnavailable
from junction.traffic.estimate import prompt_tokens
from junction.traffic.limits import Limits, LimitSource, Plans
from junction.traffic.report import LimitUsage, Usage
from junction.traffic.stage import TrafficStage
from junction.traffic.windows import (
    ADMIT,
    SETTLE,
    USAGE,
    WINDOW_MS,
    Admission,
    MemoryWindows,
    Window,
    parse_admission,
    raw_reset,
    raw_total,
)

UNITS = ("requests", "tokens")


#: Per unit, its three header names and its windows as ``(where its total is, where its reset
#: is, limit, limit as the header's value)``, the places indexes into an admission's values.
HeaderPlan = list[tuple[tuple[str, str, str], list[tuple[int, int, int, str]]]]


class RatePlan:
    """The windows of one caller, org, bridge and model, in Redis: the admission and settle
    scripts' calls packed with their keys and limits (``None`` without Redis), and the headers'
    plan (:data:`HeaderPlan`) twice: over ADMIT's raw answer (``raw_headers``: per scope its
    count, token total and reset) and over an :class:`Admission`'s per-window lists."""

    __slots__ = ("windows", "at", "tokens", "admit", "settle", "headers", "raw_headers")

    def __init__(self, windows: list[Window], at: dict[int, int], admit: Any, settle: Any) -> None:
        self.windows, self.at, self.admit, self.settle = windows, at, admit, settle
        self.tokens = any(window.unit == "tokens" for window in windows)
        names = [(f"x-ratelimit-limit-{unit}", f"x-ratelimit-remaining-{unit}", f"x-ratelimit-reset-{unit}")
                 for unit in UNITS]
        self.headers: HeaderPlan = [
            (names[i], [(index, index, window.limit, str(window.limit)) for index, window in enumerate(windows)
                        if window.unit == unit]) for i, unit in enumerate(UNITS)]
        self.raw_headers: HeaderPlan = [
            (names[i], [(raw_total(window), raw_reset(window), window.limit, str(window.limit))
                        for window in windows if window.unit == unit]) for i, unit in enumerate(UNITS)]


#: The plan of a call no window applies to.
NO_WINDOWS = RatePlan([], {}, None, None)


class Taken:
    """What the call took: its id in the windows, its plan and token reservation, and the time
    its entries carry (Redis's clock, from the admission). Hears the admission's answer (no
    closure per call)."""

    __slots__ = ("stage", "call", "id", "plan", "tokens", "at")

    def __init__(self, stage: RateLimitStage, call: Call, id: str, plan: RatePlan, tokens: int) -> None:
        self.stage, self.id, self.plan, self.tokens = stage, id, plan, tokens
        self.call: Call | None = call
        self.at = 0

    def __call__(self, result: Any) -> None:
        stage = self.stage
        if isinstance(result, BaseException):
            stage._unavailable(result)
            return
        if result[0] == 0:  # admitted in every window (the common case): read the answer as it is
            stage._took(self, result)
            return
        stage._admitted(self, parse_admission(result, self.plan.windows, self.plan.at))

    def hit(self, result: Any) -> None:
        """Hears the admission of a known cache hit (sent with no tokens)."""
        self.tokens = 0
        self(result)


class RateLimitStage(TrafficStage):
    def __init__(self, config: RateLimitConfig, context: PluginContext) -> None:
        super().__init__("rate-limit", config, context, config.prefix, (ADMIT, SETTLE))
        self._config = config
        self._memory = MemoryWindows() if context.redis is None else None
        self._defaults = {scope: _limits(getattr(config, scope)) for scope in ("keys", "orgs", "bridges")}
        self._models = {model: _limits(limits) for model, limits in config.models.items()}
        self._plans: Plans[RatePlan] = Plans(self._limits)

    # --- before the call ----------------------------------------------------------------------

    async def scopes(self, call: Call) -> list[tuple[str, str, Limits]]:
        """``(scope, id, limits)`` of every scope of the call that has a limit."""
        found: list[tuple[str, str, Limits]] = list(await self._limits.scopes(call, self._defaults))
        model = self._models.get(call.request.model)
        if model is not None:
            found.append(("model", call.request.model, model))
        return [entry for entry in found if entry[2].rpm is not None or entry[2].tpm is not None]

    async def plan(self, call: Call) -> RatePlan:
        key = LimitSource.plan_key(call, call.request.model)
        plan = self._plans.get(key)
        if plan is not None:
            return plan
        generation = self._limits.generation
        windows: list[Window] = []
        at: dict[int, int] = {}
        keys: list[str] = []
        fixed: list[int] = [WINDOW_MS]
        for index, (scope, scope_id, limits) in enumerate(await self.scopes(call)):
            stem = f"{self._prefix}:{scope}:{scope_id}"
            if limits.rpm is not None:
                at[2 * index + 1] = len(windows)
                windows.append(Window(scope, "requests", stem + ":r", limits.rpm, 1, index))
            if limits.tpm is not None:
                at[2 * index + 2] = len(windows)
                windows.append(Window(scope, "tokens", stem + ":t", limits.tpm, 0, index))
            keys += (stem + ":log", stem + ":tok")
            fixed += (_or_none(limits.rpm), _or_none(limits.tpm))
        if not windows:
            plan = NO_WINDOWS
        elif self._pipeline is None:
            plan = RatePlan(windows, at, None, None)
        else:
            plan = RatePlan(windows, at, self._pipeline.prepare(ADMIT, keys, fixed, 2),
                            self._pipeline.prepare(SETTLE, keys, [], 4))
        self._plans.put(key, plan, self._limits.org_expires(call.org_id), generation)
        return plan

    async def enter(self, call: Call) -> None:
        plan = await self.plan(call)
        if plan is NO_WINDOWS:
            return
        tokens = prompt_tokens(call) + self._config.output_cap(call) if plan.tokens else 0
        taken = Taken(self, call, self._ids.new(), plan, tokens)
        if self._memory is not None:
            windows = [dataclasses.replace(window, amount=tokens) if window.unit == "tokens" else window
                       for window in plan.windows]
            self._admitted(taken, self._memory.admit(windows, taken.id))
            return
        # A known cache hit (the cache stage found it in its worker's memory) counts as a request
        # and takes no tokens: nothing to settle after it.
        hit = ((plan.admit, taken.id, 0), taken.hit) if tokens else SAME
        call.store_batch(self._pipeline).queue(self._guard, (plan.admit, taken.id, tokens), taken, hit)

    def _unavailable(self, error: BaseException) -> None:
        if not isinstance(error, StoreUnavailable):  # the script itself failed: count it as the store's
            self._guard.trip(error)
        if self._guard.on_error == "closed":
            raise self._guard.refusal()

    def _took(self, taken: Taken, raw: Any) -> None:
        """ADMIT admitted the call (see :func:`~junction.traffic.windows.parse_admission` for its
        answer): the headers straight from the answer, not through an :class:`Admission` (parsing
        it and the headers from it took ~7 µs a call on a slow host; this ~2.5)."""
        call, taken.call = taken.call, None  # no cycle through the call's state
        assert call is not None
        _headers(taken.plan.raw_headers, raw, raw, call.response_headers)
        self._keep(call, taken, raw[-1])

    def _admitted(self, taken: Taken, admission: Admission) -> None:
        call, taken.call = taken.call, None  # no cycle through the call's state
        assert call is not None
        headers = call.response_headers
        if admission.refused is not None:
            headers = {}
        _headers(taken.plan.headers, admission.totals, admission.resets_ms, headers)
        if admission.refused is not None:
            window = taken.plan.windows[admission.refused]
            what = window.unit
            limit = f"rate limit exceeded: {window.scope} limit of {window.limit} {what} per minute"
            param = f"{window.scope}.{'rpm' if what == 'requests' else 'tpm'}"
            needed = taken.tokens if what == "tokens" else 1
            if needed > window.limit:  # never fits, however long the client waits
                detail = (f"this request needs {needed} tokens (lower max_tokens, or raise the limit)"
                          if what == "tokens" else "no request is allowed")
                raise RateLimited(f"{limit}: {detail}", code="rate_limit_exceeded", param=param,
                                  headers={**headers, SHOULD_RETRY: "false"})
            retry = max(1, -(-admission.retry_ms // 1000))
            detail = f" (this request needs {taken.tokens} tokens)" if what == "tokens" else ""
            raise RateLimited(f"{limit}{detail}; retry after {retry} s", code="rate_limit_exceeded", param=param,
                              headers={**headers, "Retry-After": str(retry)})
        self._keep(call, taken, admission.at_ms)

    def _keep(self, call: Call, taken: Taken, at_ms: int) -> None:
        """The call was admitted: it holds ``taken``, whose entries carry ``at_ms``."""
        call.state[Taken] = taken
        taken.at = at_ms
        if taken.plan.tokens:  # the token reservation is replaced by the real use at the end
            call.when_ended(self._on_end)

    # --- after the call -----------------------------------------------------------------------

    def _settle(self, call: Call) -> None:
        taken = call.state.get(Taken)
        if taken is None or not taken.plan.tokens:
            return
        used = _tokens_used(call, taken.tokens)
        if used == taken.tokens:
            return
        if self._memory is not None:
            windows = [window for window in taken.plan.windows if window.unit == "tokens"]
            self._memory.settle(windows, taken.id, used)
            return
        entry = f"{taken.id}:{taken.tokens}"
        self._settler.add((taken.plan.settle, entry, f"{taken.id}:{used}", used - taken.tokens, taken.at))

    # --- the admin API's report -----------------------------------------------------------------

    async def usage(self, scope: str, scope_id: str, own: Limits) -> Usage:
        """Use of the last minute against the limits of one key, org or bridge."""
        limits = own.over(self._defaults[scope + "s"])
        stem = f"{self._prefix}:{scope}:{scope_id}"
        if self._memory is not None:
            used = self._memory.totals([stem + ":r", stem + ":t"])
        else:
            keys = [stem + ":log", stem + ":tok"]
            used = [int(v) for v in await self._guard.run(lambda: self._redis.eval(USAGE, 2, *keys, WINDOW_MS))]
        return Usage(requests=LimitUsage.of(limits.rpm, used[0]), tokens=LimitUsage.of(limits.tpm, used[1]))


def _limits(settings: ScopeLimits) -> Limits:
    return Limits(rpm=settings.rpm, tpm=settings.tpm)


def _or_none(limit: int | None) -> int:
    return -1 if limit is None else limit


def _tokens_used(call: Call, reserved: int) -> int:
    """The tokens to charge: 0 for a cache hit, the real usage when reported, the reservation
    when an answer gave none, 0 for a call that failed without usage (a refund)."""
    if call.cache_hit:
        return 0
    outcome = call.outcome
    if outcome is not None and outcome.usage is not None:
        return outcome.usage.total_tokens
    if outcome is None or outcome.status in (200, CLIENT_CLOSED):
        return reserved  # answered (or abandoned) without usage: the upstream spent something
    return 0


def _headers(plan: HeaderPlan, totals: Sequence[int], resets: Sequence[int], headers: dict[str, str]) -> None:
    """``x-ratelimit-*``: for requests and for tokens, the window with the least room left
    (``plan``'s places index ``totals`` and ``resets``)."""
    for (limit_name, remaining_name, reset_name), windows in plan:
        if not windows:
            continue
        least: int | None = None
        shown = ""
        reset_at = 0
        for total_at, window_reset_at, limit, limit_shown in windows:
            remaining = limit - totals[total_at]
            if least is None or remaining < least:
                least, reset_at, shown = remaining, window_reset_at, limit_shown
        assert least is not None
        reset = resets[reset_at]
        headers[limit_name] = shown
        headers[remaining_name] = str(least) if least > 0 else "0"
        headers[reset_name] = f"{reset / 1000 if reset > 0 else 0:g}s"
