"""The budget stage: reserve the expected cost in every budget that applies before the call,
settle the real cost after it.

What a caller's budgets make (the ledgers of the current periods, their Redis keys, the
reservation script's call packed once, the candidate deployments' prices) is a
:class:`BudgetPlan`, kept per caller, org, bridge and model (:class:`~junction.traffic.limits.Plans`)
until the org's limits are read again or the UTC day ends: a call only adds its id and amount."""

from __future__ import annotations

import dataclasses
import math
import time
from datetime import UTC, datetime
from typing import Any

from junction.errors import SHOULD_RETRY, PermissionDenied, RateLimited
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
    ledger_fixed,
    parse_reservation,
)
from junction.traffic.limits import Limits, LimitSource, Plans
from junction.traffic.report import BudgetUsage, Usage
from junction.traffic.stage import TrafficStage


class BudgetPlan:
    """The budgets of one caller, org, bridge and model: the ledgers of the current periods
    (amounts 0: each call has its own), the prices of the deployments the call may reach
    (``None``: unpriced), and in Redis the reservation and settle scripts' calls packed with
    their keys and caps (``None`` without Redis)."""

    __slots__ = ("ledgers", "prices", "reserve", "settle", "answering")

    def __init__(self, ledgers: list[Ledger], prices: list[tuple[str, ModelPrice | None]], reserve: Any,
                 settle: Any) -> None:
        self.ledgers, self.prices, self.reserve, self.settle = ledgers, prices, reserve, settle
        #: Prices of the deployments that answered, by ``provider/model`` (for settling).
        self.answering: dict[str, ModelPrice | None] = {}


#: The plan of a call no budget applies to.
NO_BUDGETS = BudgetPlan([], [], None, None)


class Hold:
    """What the call reserved: its id in the ledgers, its plan, the amount (nano-USD), and the
    price it was reserved at (the dearest of the call's candidate deployments). Hears the
    reservation's answer (no closure per call)."""

    __slots__ = ("stage", "call", "id", "plan", "amount", "price")

    def __init__(self, stage: BudgetStage, call: Call, id: str, plan: BudgetPlan, amount: int,
                 price: ModelPrice) -> None:
        self.stage, self.id, self.plan, self.amount, self.price = stage, id, plan, amount, price
        self.call: Call | None = call

    @property
    def ledgers(self) -> list[Ledger]:
        return self.plan.ledgers

    def __call__(self, result: Any) -> None:
        stage = self.stage
        if isinstance(result, BaseException):
            if not isinstance(result, StoreUnavailable):
                stage._guard.trip(result)
            if stage._guard.on_error == "closed":
                raise stage._guard.refusal()
            return
        if result[0] == 0:  # reserved in every ledger (the common case): nothing else to read
            stage._held(self)
            return
        stage._reserved(self, parse_reservation(result))


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
        self._plans: Plans[BudgetPlan] = Plans(self._limits)

    # --- before the call ----------------------------------------------------------------------

    async def _scopes(self, call: Call) -> list[tuple[str, str, Limits]]:
        found = await self._limits.scopes(call, self._defaults)
        return [entry for entry in found if entry[2].budget_usd is not None]

    def _ledger(self, scope: str, scope_id: str, limits: Limits, amount: int) -> Ledger:
        label, end = self._periods.bounds(limits.budget_period)
        return Ledger(scope, f"{self._prefix}:{scope}:{scope_id}:{label}",
                      int(round((limits.budget_usd or 0.0) * NANO)), amount, end)

    def _labels(self, call: Call) -> list[str]:
        labels = list(self._aliases.get(call.request.model, (call.request.model,)))
        if call.fallback_model:
            labels += self._aliases.get(call.fallback_model, [call.fallback_model])
        return labels

    def _label_price(self, label: str) -> ModelPrice | None:
        provider, _, model = label.partition("/")
        return self._book.price_or_default(provider, model)

    async def plan(self, call: Call) -> BudgetPlan:
        key = LimitSource.plan_key(call, call.request.model, call.fallback_model)
        plan = self._plans.get(key)
        if plan is not None:
            return plan
        generation = self._limits.generation
        scopes = await self._scopes(call)
        if not scopes:
            plan = NO_BUDGETS
        else:
            ledgers = [self._ledger(scope, scope_id, limits, 0) for scope, scope_id, limits in scopes]
            prices = [(label, self._label_price(label)) for label in self._labels(call)]
            reserve = settle = None
            if self._pipeline is not None:
                keys, fixed = ledger_fixed(ledgers)
                reserve = self._pipeline.prepare(RESERVE, keys, fixed, 2)
                settle = self._pipeline.prepare(SETTLE, keys, [], 3)
            plan = BudgetPlan(ledgers, prices, reserve, settle)
        # Periods end at UTC midnight: a plan (its ledgers' period labels) does not outlive the day.
        day_ends = time.monotonic() + 86_400 - time.time() % 86_400
        self._plans.put(key, plan, min(self._limits.org_expires(call.org_id), day_ends), generation)
        return plan

    @staticmethod
    def _price(plan: BudgetPlan, prompt: int, output: int) -> tuple[ModelPrice, int]:
        """The dearest price among the deployments the call may reach, and the reservation."""
        best: tuple[ModelPrice, float] | None = None
        for label, price in plan.prices:
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
        plan = await self.plan(call)
        if plan is NO_BUDGETS:
            return
        price, amount = self._price(plan, prompt_tokens(call), self._config.output_cap(call))
        hold = Hold(self, call, self._ids.new(), plan, amount, price)
        if self._memory is not None:
            ledgers = [dataclasses.replace(ledger, amount=amount) for ledger in plan.ledgers]
            self._reserved(hold, self._memory.reserve(ledgers, hold.id))
            return
        # Hits are free: a call known to be a cache hit when the batch goes reserves nothing (and
        # so has nothing to refund). A hit found in Redis by the same batch is refunded instead.
        call.store_batch(self._pipeline).queue(self._guard, (plan.reserve, hold.id, amount), hold, None)

    def _held(self, hold: Hold) -> None:
        call, hold.call = hold.call, None  # no cycle through the call's state
        assert call is not None
        call.state[Hold] = hold
        call.when_ended(self._on_end)

    def _reserved(self, hold: Hold, reservation: Reservation) -> None:
        if reservation.refused is None:
            self._held(hold)
            return
        hold.call = None  # no cycle through the call's state
        index = reservation.refused
        ledger = hold.ledgers[index]
        spent, reserved = reservation.spent[index], reservation.reserved[index]
        period = "" if ledger.period_end is None else f" this {_period_name(ledger)}"
        budget = f"the {ledger.scope}'s budget is ${ledger.cap / NANO:g}{period}"
        cost = f"${hold.amount / NANO:.6f} this request may cost"
        headers: dict[str, str] = {}
        if hold.amount > ledger.cap:
            message = f"budget exceeded: {budget}, less than the {cost} (lower max_tokens, or raise the budget)"
            headers[SHOULD_RETRY] = "false"
        elif spent + hold.amount > ledger.cap:
            # Spent: only the next period frees any of it (and none, without a period).
            message = (f"budget exceeded: {budget}; ${spent / NANO:.6f} spent leaves less than the {cost}")
            headers[SHOULD_RETRY] = "false"
            if ledger.period_end is not None:
                seconds = math.ceil((ledger.period_end - datetime.now(UTC)).total_seconds())
                headers["Retry-After"] = str(max(seconds, 1))
        else:
            # Held by calls in flight: their reservations go back (mostly) as soon as they end.
            message = (f"budget exceeded: {budget}; ${spent / NANO:.6f} spent and ${reserved / NANO:.6f} held by "
                       f"calls in flight leave less than the {cost}; retry when they end")
            headers["Retry-After"] = "1"
        raise RateLimited(message, code="budget_exceeded", param=f"{ledger.scope}.budget_usd", headers=headers)

    # --- after the call -----------------------------------------------------------------------

    def _cost(self, call: Call, hold: Hold) -> int:
        """Nano-USD to charge: $0 for a cache hit; the real usage at the answering deployment's
        price; the reservation when an answer (or an abandoned one) gave no usage; else $0."""
        if call.cache_hit:
            return 0
        outcome = call.outcome
        if outcome is not None and outcome.usage is not None:
            price = hold.price
            label = call.deployment
            if label is not None:
                answering = hold.plan.answering
                if label not in answering:
                    answering[label] = self._label_price(label)
                price = answering[label] or price
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
            self._memory.settle(hold.ledgers, hold.id, cost)
            return
        self._settler.add((hold.plan.settle, f"{hold.id}:{hold.amount}", hold.amount, cost))

    # --- the admin API's report -----------------------------------------------------------------

    async def usage(self, scope: str, scope_id: str, own: Limits) -> Usage:
        limits = own.over(self._defaults[scope + "s"])
        if limits.budget_usd is None:
            return Usage()
        ledger = self._ledger(scope, scope_id, limits, 0)
        if self._memory is not None:
            spent, reserved = self._memory.usage([ledger.stem])[0]
        else:
            keys = [ledger.stem + ":h", ledger.stem + ":z"]
            spent, reserved = (int(v) for v in await self._guard.run(lambda: self._redis.eval(USAGE, 2, *keys)))
        return Usage(budget=BudgetUsage(
            limit_usd=limits.budget_usd, period=limits.budget_period, resets_at=ledger.period_end,
            spent_usd=spent / NANO, reserved_usd=reserved / NANO,
            remaining_usd=max(ledger.cap - spent - reserved, 0) / NANO))


def _limits(settings: ScopeBudget) -> Limits:
    return Limits(budget_usd=settings.budget_usd, budget_period=settings.budget_period)


def _period_name(ledger: Ledger) -> str:
    # The stem ends with the period's label, 2026-12-03 or 2026-12 (the prefix may hold dashes too).
    return "day" if ledger.stem.rpartition(":")[2].count("-") == 2 else "month"
