"""The rate-limit stage: check and take every window that applies before the call, settle the
token windows with the real usage after it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from junction.errors import RateLimited
from junction.middleware.rate_limit.config import RateLimitConfig, ScopeLimits
from junction.plugins import Call, PluginContext
from junction.plugins.call import CLIENT_CLOSED
from junction.plugins.store_guard import StoreUnavailable
from junction.traffic.estimate import prompt_tokens
from junction.traffic.limits import Limits
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
    admit_args,
    parse_admission,
    settle_args,
)


class Taken:
    """What the call took: its id in the windows, its token windows and token reservation."""

    __slots__ = ("call", "token_windows", "tokens")

    def __init__(self, call: str, token_windows: list[Window], tokens: int) -> None:
        self.call, self.token_windows, self.tokens = call, token_windows, tokens


class RateLimitStage(TrafficStage):
    def __init__(self, config: RateLimitConfig, context: PluginContext) -> None:
        super().__init__("rate-limit", config, context, config.prefix, (ADMIT, SETTLE))
        self._config = config
        self._memory = MemoryWindows() if context.redis is None else None
        self._defaults = {scope: _limits(getattr(config, scope)) for scope in ("keys", "orgs", "bridges")}
        self._models = {model: _limits(limits) for model, limits in config.models.items()}

    # --- before the call ----------------------------------------------------------------------

    async def scopes(self, call: Call) -> list[tuple[str, str, Limits]]:
        """``(scope, id, limits)`` of every scope of the call that has a limit."""
        found: list[tuple[str, str, Limits]] = list(await self._limits.scopes(call, self._defaults))
        model = self._models.get(call.request.model)
        if model is not None:
            found.append(("model", call.request.model, model))
        return [entry for entry in found if entry[2].rpm is not None or entry[2].tpm is not None]

    async def enter(self, call: Call) -> None:
        windows: list[Window] = []
        tokens = -1
        for scope, scope_id, limits in await self.scopes(call):
            stem = f"{self._prefix}:{scope}:{scope_id}"
            if limits.rpm is not None:
                windows.append(Window(scope, "requests", stem + ":r", limits.rpm, 1))
            if limits.tpm is not None:
                if tokens < 0:
                    tokens = prompt_tokens(call) + self._config.output_cap(call)
                windows.append(Window(scope, "tokens", stem + ":t", limits.tpm, tokens))
        if not windows:
            return
        taken = Taken(self._ids.new(), [w for w in windows if w.unit == "tokens"], max(tokens, 0))

        def on_result(result: Any) -> None:
            if isinstance(result, BaseException):
                self._unavailable(result)
                return
            self._admitted(call, windows, taken, parse_admission(result))

        if self._memory is not None:
            self._admitted(call, windows, taken, self._memory.admit(windows, taken.call))
            return
        keys, args = admit_args(windows, taken.call, 0)
        batch = call.store_batch(self._pipeline)
        self._settler.ride(batch)  # earlier calls' settles share this round trip
        batch.queue(self._guard, lambda pipe: pipe.eval(ADMIT, len(keys), *keys, *args), on_result)

    def _unavailable(self, error: BaseException) -> None:
        if not isinstance(error, StoreUnavailable):  # the script itself failed: count it as the store's
            self._guard.trip(error)
        if self._guard.on_error == "closed":
            raise self._guard.refusal()

    def _admitted(self, call: Call, windows: Sequence[Window], taken: Taken, admission: Admission) -> None:
        headers = _headers(windows, admission)
        if admission.refused is not None:
            window = windows[admission.refused]
            retry = max(1, -(-admission.retry_ms // 1000))
            what = "requests" if window.unit == "requests" else "tokens"
            detail = (f" (this request needs {window.amount} tokens)" if window.unit == "tokens" else "")
            raise RateLimited(
                f"rate limit exceeded: {window.scope} limit of {window.limit} {what} per minute{detail}; "
                f"retry after {retry} s",
                code="rate_limit_exceeded", param=f"{window.scope}.{'rpm' if what == 'requests' else 'tpm'}",
                headers={**headers, "Retry-After": str(retry)})
        call.response_headers.update(headers)
        call.state[Taken] = taken

    # --- after the call -----------------------------------------------------------------------

    def _settle(self, call: Call) -> None:
        taken = call.state.get(Taken)
        if taken is None or not taken.token_windows:
            return
        used = _tokens_used(call, taken.tokens)
        if used == taken.tokens:
            return
        if self._memory is not None:
            self._memory.settle(taken.token_windows, taken.call, used)
            return
        keys, args = settle_args(taken.token_windows, taken.call, taken.tokens, used)
        self._settler.add(SETTLE, keys, args)

    # --- the admin API's report -----------------------------------------------------------------

    async def usage(self, scope: str, scope_id: str, own: Limits) -> Usage:
        """Use of the last minute against the limits of one key, org or bridge."""
        limits = own.over(self._defaults[scope + "s"])
        stem = f"{self._prefix}:{scope}:{scope_id}"
        stems = [stem + ":r", stem + ":t"]
        if self._memory is not None:
            used = self._memory.totals(stems)
        else:
            keys = [part for s in stems for part in (s + ":z", s + ":t")]
            used = [int(v) for v in await self._guard.run(lambda: self._redis.eval(USAGE, len(keys), *keys, WINDOW_MS))]
        return Usage(requests=LimitUsage.of(limits.rpm, used[0]), tokens=LimitUsage.of(limits.tpm, used[1]))


def _limits(settings: ScopeLimits) -> Limits:
    return Limits(rpm=settings.rpm, tpm=settings.tpm)


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


def _headers(windows: Sequence[Window], admission: Admission) -> dict[str, str]:
    """``x-ratelimit-*``: for requests and for tokens, the window with the least room left."""
    headers: dict[str, str] = {}
    for unit in ("requests", "tokens"):
        tightest = None
        for index, window in enumerate(windows):
            if window.unit != unit:
                continue
            remaining = max(window.limit - admission.totals[index], 0)
            if tightest is None or remaining < tightest[1]:
                tightest = (window, remaining, admission.resets_ms[index])
        if tightest is not None:
            window, remaining, reset_ms = tightest
            headers[f"x-ratelimit-limit-{unit}"] = str(window.limit)
            headers[f"x-ratelimit-remaining-{unit}"] = str(remaining)
            headers[f"x-ratelimit-reset-{unit}"] = f"{max(reset_ms, 0) / 1000:g}s"
    return headers
