"""What calls cost: per-model prices, shipped by each provider plugin and overridable in config.

Every built-in provider ships a ``prices.toml`` beside its code (a third-party provider may do the
same, or pass :class:`ModelPrice` entries however it likes) and hands the entries to its
:class:`~junction.plugins.protocols.ProviderSpec` (``prices=``). The :class:`PriceBook` the
:class:`~junction.runtime.Runtime` builds holds them, with ``[pricing.models."provider/model"]`` tables
from the config taking precedence. Budgets reserve and charge with it; the usage ledger records the
cost of each call *and the price used*, so cost can be recomputed after a price change.

Prices are USD per million tokens. A model id that is not in the table is looked up once more
without a trailing date, ``-YYMM`` or ``-latest`` (``gpt-4o-2024-08-06`` → ``gpt-4o``,
``claude-sonnet-4-5-20250929`` → ``claude-sonnet-4-5``); never by a looser prefix, which would price
``gpt-4o-audio-preview`` as ``gpt-4o``. A model without a price is never charged a silent $0: see
:class:`PricingSettings` (``unpriced``).
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Iterable, Sequence
from datetime import date
from importlib import resources
from typing import Literal

import msgspec

from junction.errors import ConfigError
from junction.schemas.chat import Usage

_PER_TOKEN = 1 / 1_000_000
_VERSION_SUFFIX = re.compile(r"(-\d{4}-\d{2}-\d{2}|-\d{8}|-\d{4}|-latest)$")


class ModelPrice(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One model's prices, USD per million tokens, and the day they took effect."""

    #: The provider's model id (``gpt-4o``), without the provider prefix.
    model: str
    input: float
    output: float
    #: Prompt tokens read from the provider's prompt cache (default: ``input``).
    cached_input: float | None = None
    #: Prompt tokens written to the provider's prompt cache (Anthropic; default: ``input``).
    cache_write: float | None = None
    #: Reasoning tokens, where priced apart from output (default: ``output``).
    reasoning: float | None = None
    #: ISO date the price took effect (``"2024-10-01"``); the newest one not in the future wins.
    since: str = "1970-01-01"

    def cost(self, usage: Usage) -> float:
        """The USD cost of ``usage`` at this price. ``prompt_tokens`` includes cached and
        cache-written tokens and ``completion_tokens`` includes reasoning tokens (OpenAI's
        convention, which every provider's usage is translated to)."""
        details = usage.prompt_tokens_details
        written = (details.cache_creation_tokens or 0) if details else 0
        return self.tokens_cost(usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens, written,
                                usage.reasoning_tokens)

    def tokens_cost(self, prompt: int, completion: int, cached: int, written: int, reasoning: int) -> float:
        """:meth:`cost` from the token counts in hand (the ledger row has them already)."""
        fresh_input = prompt - cached - written
        plain_output = completion - reasoning
        # Unset rates fall back inline: the ledger prices every call, and a helper call per rate
        # was a third of this.
        price_in, price_out = self.input, self.output
        total = ((fresh_input if fresh_input > 0 else 0) * price_in
                 + cached * (price_in if self.cached_input is None else self.cached_input)
                 + written * (price_in if self.cache_write is None else self.cache_write)
                 + (plain_output if plain_output > 0 else 0) * price_out
                 + reasoning * (price_out if self.reasoning is None else self.reasoning))
        return total * _PER_TOKEN

    def estimate(self, input_tokens: int, output_tokens: int) -> float:
        """The USD cost of a call before it ran: every prompt token fresh, every output token plain."""
        return (input_tokens * self.input + output_tokens * self.output) * _PER_TOKEN


class PriceSettings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A ``[pricing.models."provider/model"]`` table, or ``[pricing] default``."""

    input: float
    output: float
    cached_input: float | None = None
    cache_write: float | None = None
    reasoning: float | None = None
    since: str = "1970-01-01"


class PricingSettings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """``[pricing]``: overrides of the shipped tables, and what a model without a price costs."""

    #: ``"refuse"``: wherever a budget applies, a call to a model without a price is refused
    #: (the budget cannot know what it would cost), and the ledger records its cost as unknown;
    #: ``"default"``: it is charged ``default``.
    unpriced: Literal["refuse", "default"] = "refuse"
    default: PriceSettings | None = None
    #: Keyed by ``provider/model``; wins over the provider's shipped price.
    models: dict[str, PriceSettings] = {}


def load_prices(package: str, filename: str = "prices.toml") -> tuple[ModelPrice, ...]:
    """The entries of a provider package's price file::

        [[price]]
        model = "gpt-4o"
        input = 2.5
        output = 10.0
        cached_input = 1.25
        since = "2024-10-01"
    """
    text = resources.files(package).joinpath(filename).read_text(encoding="utf-8")
    try:
        return msgspec.convert(tomllib.loads(text).get("price", []), tuple[ModelPrice, ...])
    except (tomllib.TOMLDecodeError, msgspec.ValidationError) as error:
        raise ConfigError(f"{package}/{filename}: {error}") from None


class PriceBook:
    """Prices by ``provider/model``; built by the Runtime, filled with each provider's table by
    the plugin manager, read by budgets and the usage ledger."""

    def __init__(self, settings: PricingSettings | None = None) -> None:
        settings = settings or PricingSettings()
        self.unpriced = settings.unpriced
        if settings.unpriced == "default" and settings.default is None:
            raise ConfigError('pricing.default: must be set when pricing.unpriced = "default"')
        self.default: ModelPrice | None = None
        if settings.default is not None:
            _check_rates("pricing.default", settings.default)
            self.default = _price("*", settings.default)
        self._shipped: dict[str, list[ModelPrice]] = {}
        self._configured: dict[str, ModelPrice] = {}
        for label, table in settings.models.items():
            provider, _, model = label.partition("/")
            if not provider or not model:
                raise ConfigError(f"pricing.models.{label}: must be named provider/model")
            _check_date(f"pricing.models.{label}.since", table.since)
            _check_rates(f"pricing.models.{label}", table)
            self._configured[label] = _price(model, table)
        self._memo: dict[str, ModelPrice | None] = {}

    def add_provider_prices(self, provider: str, prices: Iterable[ModelPrice]) -> None:
        """Add a provider's shipped table (several entries per model: one per price change)."""
        for price in prices:
            _check_date(f"{provider} price of {price.model}.since", price.since)
            _check_rates(f"{provider} price of {price.model}", price)
            self._shipped.setdefault(f"{provider}/{price.model}", []).append(price)
        for entries in self._shipped.values():
            entries.sort(key=lambda entry: entry.since, reverse=True)
        self._memo.clear()

    def price(self, provider: str, model: str) -> ModelPrice | None:
        """The price in effect today for ``provider``'s ``model``, or ``None`` when it has none."""
        label = f"{provider}/{model}"
        try:
            return self._memo[label]
        except KeyError:
            pass
        found = self._lookup(label) or self._lookup(f"{provider}/{_VERSION_SUFFIX.sub('', model)}")
        if len(self._memo) < 4096:  # only known models repeat; attacker-chosen names must not pile up
            self._memo[label] = found
        return found

    def price_or_default(self, provider: str, model: str) -> ModelPrice | None:
        """:meth:`price`, else the configured default when ``unpriced = "default"``."""
        found = self.price(provider, model)
        if found is None and self.unpriced == "default":
            return self.default
        return found

    def cost(self, provider: str, model: str, usage: Usage | None) -> tuple[float, ModelPrice] | None:
        """``(usd, price used)`` for a call's usage, or ``None`` when the cost is unknown (no usage,
        or no price and no default)."""
        price = self.price_or_default(provider, model)
        if price is None or usage is None:
            return None
        return price.cost(usage), price

    def _lookup(self, label: str) -> ModelPrice | None:
        configured = self._configured.get(label)
        if configured is not None:
            return configured
        today = date.today().isoformat()
        for entry in self._shipped.get(label, ()):
            if entry.since <= today:
                return entry
        return None

    def known(self) -> Sequence[str]:
        """Every priced ``provider/model``, for listings."""
        return sorted(set(self._shipped) | set(self._configured))


def _price(model: str, table: PriceSettings) -> ModelPrice:
    return ModelPrice(model=model, input=table.input, output=table.output, cached_input=table.cached_input,
                      cache_write=table.cache_write, reasoning=table.reasoning, since=table.since)


#: A price's rates, USD per million tokens.
_RATES = ("input", "output", "cached_input", "cache_write", "reasoning")


def _check_rates(where: str, price: PriceSettings | ModelPrice) -> None:
    """Every rate set is a finite number, not negative: a negative one would pay a budget back
    for every call, an infinite one (``1e400`` in TOML) refuse every call."""
    for name in _RATES:
        value = getattr(price, name)
        if value is not None and not (math.isfinite(value) and value >= 0):
            raise ConfigError(f"{where}.{name}: must be a finite number, 0 or more (USD per million tokens)")


def _check_date(where: str, value: str) -> None:
    try:
        date.fromisoformat(value)
    except ValueError:
        raise ConfigError(f"{where}: {value!r} is not an ISO date (YYYY-MM-DD)") from None
