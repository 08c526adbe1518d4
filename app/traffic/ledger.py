"""Spend ledgers for budgets: per scope (key, org, bridge) and UTC calendar period (day, month),
in Redis (Lua) or in memory. Amounts are integer nano-dollars, so sums are exact.

Each ledger holds ``spent`` (settled cost) and ``reserved`` (the sum of in-flight reservations),
and a sorted set of the reservations themselves (``<call>:<amount>``, scored by when they lapse,
so a node that died mid-call does not hold budget for ever). A call is admitted only if
``spent + reserved + its reservation <= cap`` in every ledger that applies, and then reserved in
all of them, atomically (all or nothing). Settling replaces the reservation by the real cost;
a failed call settles at its real cost too (usually 0: a refund).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Literal

from junction.traffic.lua import NOW

Period = Literal["day", "month"]
NANO = 1_000_000_000
#: A reservation not settled after this long lapses (its call's node died).
RESERVATION_TTL_MS = 15 * 60 * 1000


# Drops a ledger's lapsed reservations (their calls' nodes died) and returns how much they held.
_PURGE = """
local function purge(h, z)
  local lapsed = redis.call('ZRANGEBYSCORE', z, '-inf', now)
  if #lapsed == 0 then return 0 end
  local freed = 0
  for j = 1, #lapsed do freed = freed + tonumber(string.match(lapsed[j], ':(%d+)$')) end
  redis.call('ZREMRANGEBYSCORE', z, '-inf', now)
  redis.call('HINCRBY', h, 'reserved', 0 - freed)
  return freed
end
"""

# KEYS: per ledger, its hash (spent, reserved) and its reservations. ARGV: the reservations'
# lifetime (ms); per ledger its cap and when its keys expire (ms since the epoch, 0: never); then
# the call's id and its reservation. The fixed arguments come first so a ledger set's call is packed
# once (PipelinedRedis.prepare). Lapsed reservations are dropped only when they could change the
# answer (the call does not fit with them): they are rare (a node died mid-call), and until then
# they only make the check stricter. Expiries are set when a key is made, not on every call.
# Commands get strings, not numbers (see junction.traffic.lua).
RESERVE = NOW + _PURGE + """
local n = #KEYS / 2
local ttl = tonumber(ARGV[1])
local lapses = string.format('%d', now + ttl)
local call, amount = ARGV[2 + 2 * n], tonumber(ARGV[3 + 2 * n])
local refused = 0
local state = {}
for i = 1, n do
  local h, z = KEYS[2 * i - 1], KEYS[2 * i]
  local cap = tonumber(ARGV[2 * i])
  local values = redis.call('HMGET', h, 'spent', 'reserved')
  local spent, reserved = tonumber(values[1] or '0'), tonumber(values[2] or '0')
  if spent + reserved + amount > cap then
    reserved = reserved - purge(h, z)
    if refused == 0 and spent + reserved + amount > cap then refused = i end
  end
  state[i] = {spent, reserved, values[1] == false and values[2] == false}
end
local out = {refused}
for i = 1, n do
  local h, z = KEYS[2 * i - 1], KEYS[2 * i]
  if refused == 0 then
    local expires = ARGV[2 * i + 1]
    redis.call('ZADD', z, lapses, call .. ':' .. ARGV[3 + 2 * n])
    redis.call('HINCRBY', h, 'reserved', ARGV[3 + 2 * n])
    if expires ~= '0' then
      if state[i][3] then redis.call('PEXPIREAT', h, expires) end
      -- Nothing reserved: the set was empty, so Redis had deleted it and ZADD made a new one.
      if state[i][2] == 0 then redis.call('PEXPIREAT', z, expires) end
    end
    state[i][2] = state[i][2] + amount
  end
  out[#out + 1] = state[i][1]
  out[#out + 1] = state[i][2]
end
return out
"""

# Amounts go back to Redis as the strings they came in (whole nano-dollars, never negative), the
# reservation's with a minus sign before it: a Lua number would be formatted (see
# junction.traffic.lua), and "-0" is refused by HINCRBY, so nothing is sent for a zero.
# KEYS: the call's ledgers (hash, reservations). ARGV: its reservation's member, the amount, the cost.
SETTLE = """
local member, reserved, cost = ARGV[1], ARGV[2], ARGV[3]
for i = 1, #KEYS / 2 do
  local h, z = KEYS[2 * i - 1], KEYS[2 * i]
  if redis.call('ZREM', z, member) == 1 and reserved ~= '0' then
    redis.call('HINCRBY', h, 'reserved', '-' .. reserved)
  end
  if cost ~= '0' then redis.call('HINCRBY', h, 'spent', cost) end
end
return 0
"""

# KEYS: per ledger, its hash and reservations (lapsed ones are dropped first: a report is exact).
USAGE = NOW + _PURGE + """
local out = {}
for i = 1, #KEYS / 2 do
  local h, z = KEYS[2 * i - 1], KEYS[2 * i]
  purge(h, z)
  local values = redis.call('HMGET', h, 'spent', 'reserved')
  out[#out + 1] = tonumber(values[1] or '0')
  out[#out + 1] = tonumber(values[2] or '0')
end
return out
"""


def period_bounds(period: Period | None, now: datetime | None = None) -> tuple[str, datetime | None]:
    """The label of the UTC calendar period ``now`` falls in (``2026-12-03``, ``2026-12``) and
    when it ends; a budget without a period never resets (``"all"``, ``None``)."""
    if period is None:
        return "all", None
    now = now or datetime.now(UTC)
    if period == "day":
        start = now.replace(hour=0, minute=0, second=0, microsecond=0)
        return start.strftime("%Y-%m-%d"), start + timedelta(days=1)
    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    end = start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)
    return start.strftime("%Y-%m"), end


class Periods:
    """:func:`period_bounds` of today, computed once a day rather than once a call."""

    __slots__ = ("_today", "_found")

    def __init__(self) -> None:
        self._today: date | None = None
        self._found: dict[Period | None, tuple[str, datetime | None]] = {}

    def bounds(self, period: Period | None) -> tuple[str, datetime | None]:
        now = datetime.now(UTC)
        if now.date() != self._today:
            self._today, self._found = now.date(), {}
        found = self._found.get(period)
        if found is None:
            found = self._found[period] = period_bounds(period, now)
        return found


@dataclass(slots=True)
class Ledger:
    """One budget that applies to a call: whose (``scope``: key, org, bridge), its Redis key stem
    (which names the period), the cap and the call's reservation (nano-dollars), and when the
    period ends (the keys outlive it by a day, for reports)."""

    scope: str
    stem: str
    cap: int
    amount: int
    period_end: datetime | None


@dataclass(slots=True)
class Reservation:
    refused: int | None
    spent: list[int]
    reserved: list[int]


def ledger_fixed(ledgers: Sequence[Ledger]) -> tuple[list[str], list[int]]:
    """RESERVE's keys and fixed arguments for ``ledgers`` (the call adds its id and amount)."""
    keys: list[str] = []
    args: list[int] = [RESERVATION_TTL_MS]
    for ledger in ledgers:
        keys += (ledger.stem + ":h", ledger.stem + ":z")
        end = ledger.period_end
        args += (ledger.cap, int((end + timedelta(days=1)).timestamp() * 1000) if end else 0)
    return keys, args


def parse_reservation(raw: Sequence[object]) -> Reservation:
    values = [int(value) for value in raw]  # type: ignore[call-overload]
    return Reservation(refused=values[0] - 1 if values[0] else None, spent=values[1::2], reserved=values[2::2])


@dataclass(slots=True)
class _Book:
    spent: int = 0
    reservations: dict[str, tuple[float, int]] = field(default_factory=dict)  # call → (lapses at, amount)

    @property
    def reserved(self) -> int:
        now = time.monotonic()
        for call in [call for call, (lapses, _) in self.reservations.items() if lapses <= now]:
            del self.reservations[call]
        return sum(amount for _, amount in self.reservations.values())


class MemoryLedgers:
    """The same ledgers in this process, for the embedded default."""

    def __init__(self) -> None:
        self._books: dict[str, _Book] = {}

    def reserve(self, ledgers: Sequence[Ledger], call: str) -> Reservation:
        books = [self._books.setdefault(ledger.stem, _Book()) for ledger in ledgers]
        refused = next((index for index, (ledger, book) in enumerate(zip(ledgers, books, strict=True))
                        if book.spent + book.reserved + ledger.amount > ledger.cap), None)
        if refused is None:
            lapses = time.monotonic() + RESERVATION_TTL_MS / 1000
            for ledger, book in zip(ledgers, books, strict=True):
                book.reservations[call] = (lapses, ledger.amount)
        return Reservation(refused, [book.spent for book in books], [book.reserved for book in books])

    def settle(self, ledgers: Sequence[Ledger], call: str, cost: int) -> None:
        for ledger in ledgers:
            book = self._books.setdefault(ledger.stem, _Book())
            book.reservations.pop(call, None)
            book.spent += cost

    def usage(self, stems: Sequence[str]) -> list[tuple[int, int]]:
        found = []
        for stem in stems:
            book = self._books.get(stem)
            found.append((book.spent, book.reserved) if book else (0, 0))
        return found
