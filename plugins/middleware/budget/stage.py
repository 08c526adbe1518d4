"""The budget stage: reserve the expected cost in every budget that applies before the call,
settle the real cost after it."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from junction.errors import PermissionDenied, RateLimited
from junction.middleware.budget.config import BudgetConfig, ScopeBudget
from junction.plugins import Call, PluginContext
from junction.plugins.call import CLIENT_CLOSED
from junction.plugins.store_guard import StoreUnavailable
from junction.pricing import ModelPrice, PriceBook
from junction.traffic.estimate import prompt_tokens
from junction.traffic.ledger import (
    NANO,
    RESERVE,
    SETTLE,
    USAGE,
    Ledger,
    MemoryLedgers,
    Periods,
    Reservation,
    parse_reservation,
    reserve_args,
    settle_args,
)
from junction.traffic.limits import Limits
from junction.traffic.report import BudgetUsage, Usage
from junction.traffic.stage import TrafficStage


class Hold:
    """What the call reserved: its id in the ledgers, the ledgers, the amount (nano-USD), and
    the price it was reserved at (the dearest of the call's candidate deployments)."""

    __slots__ = ("call", "ledgers", "amount", "price")

    def __init__(self, call: str, ledgers: list[Ledger], amount: int, price: ModelPrice) -> None:
        self.call, self.ledgers, self.amount, self.price = call, ledgers, amount, price


class BudgetStage(TrafficStage):
    def __init__(self, config: BudgetConfig, context: PluginContext) -> None:
        super().__init__("budget", config, context, config.prefix, (RESERVE, SETTLE))
        self._config = config
        self._memory = MemoryLedgers() if context.redis is None else None
        self._periods = Periods()
        self._book: PriceBook = context.pricing or PriceBook()
        self._defaults = {scope: _limits(getattr(config, scope)) for scope in ("keys", "orgs", "bridges")}
        # An alias is priced at its dearest deployment or fallback: the policy may route to any.
        self._aliases: dict[str, list[str]] = {
            name: [d.model for d in alias.deployments] + list(alias.fallbacks)
            for name, alias in context.settings.models.items()}

    # --- before the call ----------------------------------------------------------------------

    async def _scopes(self, call: Call) -> list[tuple[str, str, Limits]]:
        found = await self._limits.scopes(call, self._defaults)
        return [entry for entry in found if entry[2].budget_usd is not None]

    def _ledger(self, scope: str, scope_id: str, limits: Limits, amount: int) -> Ledger:
        label, end = self._periods.bounds(limits.budget_period)
        return Ledger(scope, f"{self._prefix}:{scope}:{scope_id}:{label}",
                      int(round((limits.budget_usd or 0.0) * NANO)), amount, end)

    def _price(self, call: Call, prompt: int, output: int) -> tuple[ModelPrice, int]:
        """The dearest price among the deployments the call may reach, and the reservation."""
        labels = list(self._aliases.get(call.request.model, (call.request.model,)))
        if call.fallback_model:
            labels += self._aliases.get(call.fallback_model, [call.fallback_model])
        best: tuple[ModelPrice, float] | None = None
        for label in labels:
            provider, _, model = label.partition("/")
            price = self._book.price_or_default(provider, model)
            if price is None:
                raise PermissionDenied(
                    f"model {label!r} has no price and a budget applies to this call; price it in "
                    f'[pricing.models."{label}"] or set [pricing] unpriced = "default"',
                    param="model", code="model_unpriced")
            estimate = price.estimate(prompt, output)
            if best is None or estimate > best[1]:
                best = (price, estimate)
        assert best is not None
        return best[0], math.ceil(best[1] * NANO)

    async def enter(self, call: Call) -> None:
        scopes = await self._scopes(call)
        if not scopes:
            return
        price, amount = self._price(call, prompt_tokens(call), self._config.output_cap(call))
        ledgers = [self._ledger(scope, scope_id, limits, amount) for scope, scope_id, limits in scopes]
        hold = Hold(self._ids.new(), ledgers, amount, price)

        def on_result(result: Any) -> None:
            if isinstance(result, BaseException):
                if not isinstance(result, StoreUnavailable):
                    self._guard.trip(result)
                if self._guard.on_error == "closed":
                    raise self._guard.refusal()
                return
            self._reserved(call, hold, parse_reservation(result))

        if self._memory is not None:
            self._reserved(call, hold, self._memory.reserve(ledgers, hold.call))
            return
        keys, args = reserve_args(ledgers, hold.call)
        batch = call.store_batch(self._pipeline)
        self._settler.ride(batch)  # earlier calls' settles share this round trip
        batch.queue(self._guard, lambda pipe: pipe.eval(RESERVE, len(keys), *keys, *args), on_result)

    def _reserved(self, call: Call, hold: Hold, reservation: Reservation) -> None:
        if reservation.refused is None:
            call.state[Hold] = hold
            return
        index = reservation.refused
        ledger = hold.ledgers[index]
        spent, reserved = reservation.spent[index] / NANO, reservation.reserved[index] / NANO
        period = "" if ledger.period_end is None else f" this {_period_name(ledger)}"
        headers = {}
        if ledger.period_end is not None:
            seconds = math.ceil((ledger.period_end - datetime.now(UTC)).total_seconds())
            headers["Retry-After"] = str(max(seconds, 1))
        raise RateLimited(
            f"budget exceeded: the {ledger.scope}'s budget is ${ledger.cap / NANO:g}{period}; "
            f"${spent:.6f} spent and ${reserved:.6f} held by calls in flight leave less than the "
            f"${hold.amount / NANO:.6f} this request may cost",
            code="budget_exceeded", param=f"{ledger.scope}.budget_usd", headers=headers)

    # --- after the call -----------------------------------------------------------------------

    def _cost(self, call: Call, hold: Hold) -> int:
        """Nano-USD to charge: $0 for a cache hit; the real usage at the answering deployment's
        price; the reservation when an answer (or an abandoned one) gave no usage; else $0."""
        if call.cache_hit:
            return 0
        outcome = call.outcome
        if outcome is not None and outcome.usage is not None:
            price = hold.price
            if call.deployment is not None:
                provider, _, model = call.deployment.partition("/")
                price = self._book.price_or_default(provider, model) or price
            return math.ceil(price.cost(outcome.usage) * NANO)
        if outcome is None or outcome.status in (200, CLIENT_CLOSED):
            return hold.amount
        return 0

    def _settle(self, call: Call) -> None:
        hold = call.state.get(Hold)
        if hold is None:
            return
        cost = self._cost(call, hold)
        if self._memory is not None:
            self._memory.settle(hold.ledgers, hold.call, cost)
            return
        keys, args = settle_args(hold.ledgers, hold.call, hold.amount, cost)
        self._settler.add(SETTLE, keys, args)

    # --- the admin API's report -----------------------------------------------------------------

    async def usage(self, scope: str, scope_id: str, own: Limits) -> Usage:
        limits = own.over(self._defaults[scope + "s"])
        if limits.budget_usd is None:
            return Usage()
        ledger = self._ledger(scope, scope_id, limits, 0)
        if self._memory is not None:
            spent, reserved = self._memory.usage([ledger.stem])[0]
        else:
            key = ledger.stem + ":h"
            spent, reserved = (int(v) for v in await self._guard.run(lambda: self._redis.eval(USAGE, 1, key)))
        return Usage(budget=BudgetUsage(
            limit_usd=limits.budget_usd, period=limits.budget_period, resets_at=ledger.period_end,
            spent_usd=spent / NANO, reserved_usd=reserved / NANO,
            remaining_usd=max(ledger.cap - spent - reserved, 0) / NANO))


def _limits(settings: ScopeBudget) -> Limits:
    return Limits(budget_usd=settings.budget_usd, budget_period=settings.budget_period)


def _period_name(ledger: Ledger) -> str:
    return "day" if ledger.stem.count("-") == 2 else "month"
