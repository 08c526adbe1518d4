"""Sliding-window logs for requests and tokens per minute, in Redis (one Lua script) or in memory.

**Algorithm: a sliding-window log with a running total**, the same for requests (each entry
weighs 1) and tokens (each entry weighs the call's reservation, later its real usage). Each
window keeps a sorted set of ``<call>:<amount>`` members scored by their time, and the sum of
their amounts. In Redis one log per scope serves both: its entries are the requests (counted
with ZCARD) and carry the tokens (summed beside it), so a call adds one entry per scope.
Admission drops the entries older than the window, then admits the call only if
``total + amount <= limit`` *in every window that applies* (key, org, bridge, model; requests and
tokens), and only then adds it to all of them: all or nothing, atomic in one script.

Why not GCRA or a token bucket: both let a full burst through and then refill continuously, so
"20 a minute" admits up to 39 in a rolling minute, and the answer to "exactly 20 of these 40"
depends on timing. The log is exact — never more than ``limit`` in any window — its memory is
one entry per admitted call in the last minute, and the entry of a call can be found again,
which is what settling needs: a call's token entry is replaced by its real usage (or removed
on failure) and the window's total corrected, so what the log counts is what was used.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from junction.traffic.lua import NOW

#: Length of every window: limits are per minute.
WINDOW_MS = 60_000
#: A refusal's Retry-After scans at most this many of the oldest entries to find when enough
#: ages out; beyond them it answers the whole window (an upper bound).
_RETRY_SCAN = 256
#: Aged-out entries one admission drops at most from a log (see ADMIT): each costs Redis a
#: microsecond or more, and Redis serves nobody else meanwhile (every node's limits, budgets and
#: cache wait). 512 of them in each of two logs took 3 ms (bench/rate_script.py --paused).
AGE_CHUNK = 512

# One log per scope (key, org, bridge, model) holds both kinds: requests are its entries (ZCARD),
# tokens the running total beside it. KEYS: per scope, the log and its token total. ARGV: the
# window (ms); per scope its rpm and tpm (-1: none); then the call's id and token reservation.
# The fixed arguments come first so a scope set's call is packed once (PipelinedRedis.prepare).
# Answers: the refused window (0: none; 2i-1 requests, 2i tokens of scope i), the ms until the
# call would fit, per scope its request count, token total and ms until its oldest entry ages out,
# and last the time the call's entries carry (what a settle finds them by).
#
# Each redis.call costs about a microsecond, so the common case makes few: one read of the two
# oldest entries tells whether any aged out (usually none, or one per call under steady load)
# and gives the reset header; only when both aged out is the log scanned for the rest. Expiries
# are renewed (to two windows ahead) when a key is new or would lapse within a window, not on
# every call: a key so always outlives its newest entry by a window.
#
# A busy scope that pauses leaves a log of aged entries: 300,000 of them in each of two logs (a
# minute at 5,000 calls a second) took one admission 720 ms to scan, and Redis answered nobody
# else meanwhile (bench/rate_script.py --paused 300000). So a log whose newest entry aged out
# too starts again (UNLINK: freed off Redis's main thread), and otherwise one admission drops at
# most AGE_CHUNK aged entries; the next ones drop the rest. While some are left the request count
# is ZCOUNT's (exact) and the token total still holds theirs: an overestimate, so a call it
# admits fits; one it would refuse first drops them all (exact again).
ADMIT = NOW + """
local function age(z, t, edge, limit, stored, total)
  -- Drops up to limit (-1: every) aged-out entries of log z, and their tokens from its total t
  -- (when it has one): the total left, and the time of the oldest entry left.
  local old = redis.call('ZRANGEBYSCORE', z, '-inf', edge, 'LIMIT', 0, limit)
  local aged, freed = #old, 0
  for k = 1, aged do freed = freed + tonumber(string.match(old[k], ':(%d+)$')) end
  local entry = redis.call('ZRANGE', z, aged, aged, 'WITHSCORES')
  if aged > 0 then redis.call('ZREMRANGEBYRANK', z, 0, aged - 1) end
  if stored and freed > 0 then
    redis.call('DECRBY', t, freed)
    total = total - freed
  end
  return total, entry[2] and tonumber(entry[2])
end
local window = tonumber(ARGV[1])
local edge = now - window
local n = #KEYS / 2
local call, tokens, taken = ARGV[2 + 2 * n], tonumber(ARGV[3 + 2 * n]), ARGV[3 + 2 * n]
local refused, retry = 0, 0
local counts, totals, firsts, renew, owed = {}, {}, {}, {}, {}
for i = 1, n do
  local z, t = KEYS[2 * i - 1], KEYS[2 * i]
  local head = redis.call('ZRANGE', z, '0', '1', 'WITHSCORES')
  local stored = redis.call('GET', t)
  local total = tonumber(stored or '0')
  local first = head[2] and tonumber(head[2])
  local behind = 0  -- aged-out entries left in the log (at its start)
  if first and first <= edge then
    local second = head[4] and tonumber(head[4])
    if second and second <= edge then  -- more than one aged out
      local newest = redis.call('ZRANGE', z, '-1', '-1', 'WITHSCORES')
      if tonumber(newest[2]) <= edge then  -- all of them: the log starts again, unscanned
        redis.call('UNLINK', z, t)
        stored, total, first = false, 0, nil
      else
        total, first = age(z, t, edge, CHUNK, stored, total)
      end
    else  -- the common case under steady load: one entry aged out (its amount sent as it came)
      redis.call('ZREM', z, head[1])
      local gone = string.match(head[1], ':(%d+)$')
      local freed = tonumber(gone)
      if stored and freed > 0 then
        -- Taken off the total below, in the INCRBY that adds this call's tokens: one command less.
        owed[i], total = gone, total - freed
      end
      first = second
    end
  end
  local count
  if first and first <= edge then  -- more aged out than one admission drops
    count = redis.call('ZCOUNT', z, '(' .. edge, '+inf')
    behind = redis.call('ZCARD', z) - count
    local live = redis.call('ZRANGE', z, behind, behind, 'WITHSCORES')
    first = live[2] and tonumber(live[2])
  else
    count = redis.call('ZCARD', z)
  end
  -- A new log (or one a purge emptied: Redis dropped it) has no expiry yet, nor a new total.
  renew[i] = count == 0 or (not stored and tokens > 0) or redis.call('PTTL', z) < window
  if refused == 0 then
    local rpm, tpm = tonumber(ARGV[2 * i]), tonumber(ARGV[2 * i + 1])
    if tpm >= 0 and total + tokens > tpm and behind > 0 and not (rpm >= 0 and count + 1 > rpm) then
      -- The total still holds the aged-out entries' tokens: drop them all for an exact answer.
      total = age(z, t, edge, -1, stored, total)
      behind = 0
    end
    if rpm >= 0 and count + 1 > rpm then
      refused, retry = 2 * i - 1, window
      if rpm > 0 then  -- room for one more once the (count + 1 - rpm)-th oldest entry ages out
        local entry = redis.call('ZRANGE', z, behind + count - rpm, behind + count - rpm, 'WITHSCORES')
        if entry[2] then retry = tonumber(entry[2]) + window - now end
      end
    elseif tpm >= 0 and total + tokens > tpm then
      refused, retry = 2 * i, window
      if tokens <= tpm then
        local need, freed = total + tokens - tpm, 0
        local entries = redis.call('ZRANGE', z, 0, SCAN, 'WITHSCORES')
        for j = 1, #entries, 2 do
          freed = freed + tonumber(string.match(entries[j], ':(%d+)$'))
          if freed >= need then retry = tonumber(entries[j + 1]) + window - now; break end
        end
      end
    end
  end
  counts[i], totals[i], firsts[i] = count, total, first
end
local out = {refused, retry}
local member = call .. ':' .. taken
for i = 1, n do
  local z, t, gone = KEYS[2 * i - 1], KEYS[2 * i], owed[i]
  if refused == 0 then
    redis.call('ZADD', z, at, member)
    if gone then
      local change = tokens - tonumber(gone)
      if change ~= 0 then redis.call('INCRBY', t, tostring(change)) end
    elseif tokens > 0 then
      redis.call('INCRBY', t, taken)
    end
    if renew[i] then
      -- Both lapse at the same moment (a purge must find the total), two windows ahead.
      redis.call('PEXPIREAT', z, now + 2 * window)
      redis.call('PEXPIREAT', t, now + 2 * window)
    end
    counts[i], totals[i] = counts[i] + 1, totals[i] + tokens
    firsts[i] = firsts[i] or now
  elseif gone then
    redis.call('DECRBY', t, gone)
  end
  out[#out + 1] = counts[i]
  out[#out + 1] = totals[i]
  out[#out + 1] = (firsts[i] and (firsts[i] + window - now)) or 0
end
out[#out + 1] = now
return out
""".replace("SCAN", str(_RETRY_SCAN - 1)).replace("CHUNK", str(AGE_CHUNK))

# KEYS: the call's logs and token totals. ARGV: its entry, the entry with the tokens it used,
# the difference, and the entry's time (ADMIT's answer). An entry keeps its place (its time): it
# still counts as a request. The new entry goes in before the old one leaves: emptied, a log would
# be dropped by Redis and come back without its expiry (kept for ever, and its total lapsing
# without it). An old entry that is gone already (aged out) takes the new one with it: nothing to
# settle. Three commands a scope in the common case, no read first (a ZSCORE cost as much as each).
SETTLE = """
local old, new, at = ARGV[1], ARGV[2], ARGV[4]
for i = 1, #KEYS / 2 do
  local z, t = KEYS[2 * i - 1], KEYS[2 * i]
  redis.call('ZADD', z, at, new)
  if redis.call('ZREM', z, old) == 1 then
    redis.call('INCRBY', t, ARGV[3])
  else
    redis.call('ZREM', z, new)
  end
end
return 0
"""


@dataclass(slots=True)
class Window:
    """One limit that applies to a call: which (``scope`` like ``key``, ``org``; ``unit``
    ``requests`` or ``tokens``), its Redis key stem, its limit, and what the call takes of it."""

    scope: str
    unit: str
    stem: str
    limit: int
    amount: int
    #: Which of the plan's scopes (its log in Redis) the window belongs to.
    scope_index: int = 0


@dataclass(slots=True)
class Admission:
    """What a window check answered: ``refused`` is the index of the first window the call did
    not fit (``None``: admitted everywhere), ``retry_ms`` when it would, per window the total
    after the check and the milliseconds until its oldest entry ages out, and the time (ms) the
    call's entries carry."""

    refused: int | None
    retry_ms: int
    totals: list[int]
    resets_ms: list[int]
    at_ms: int = 0


def raw_total(window: Window) -> int:
    """Where ADMIT's answer holds ``window``'s total after the check (its scope's request count or
    token total)."""
    return 2 + 3 * window.scope_index + (0 if window.unit == "requests" else 1)


def raw_reset(window: Window) -> int:
    """Where ADMIT's answer holds the ms until ``window``'s oldest entry ages out."""
    return 4 + 3 * window.scope_index


def parse_admission(raw: Sequence[object], windows: Sequence[Window], at: dict[int, int]) -> Admission:
    """ADMIT's answer for ``windows`` (in the plan's order); ``at`` maps the script's window number
    (2i-1: requests, 2i: tokens of scope i) to the index in ``windows``."""
    values = [int(value) for value in raw]  # type: ignore[call-overload]
    totals = [values[raw_total(window)] for window in windows]
    resets = [values[raw_reset(window)] for window in windows]
    return Admission(refused=at[values[0]] if values[0] else None, retry_ms=values[1], totals=totals,
                     resets_ms=resets, at_ms=values[-1])


@dataclass(slots=True)
class _Log:
    entries: dict[str, tuple[int, int]] = field(default_factory=dict)  # call → (time ms, amount), oldest first
    total: int = 0

    def purge(self, now: int) -> None:
        # Entries are in admission order (settling keeps an entry's place): stop at the first
        # one still inside the window.
        expired = []
        for call, (at, _) in self.entries.items():
            if at > now - WINDOW_MS:
                break
            expired.append(call)
        for call in expired:
            self.total -= self.entries.pop(call)[1]

    def reset_ms(self, now: int) -> int:
        for at, _ in self.entries.values():
            return at + WINDOW_MS - now
        return 0


class MemoryWindows:
    """The same logs in this process, for the embedded default (one worker, nothing shared)."""

    def __init__(self) -> None:
        self._logs: dict[str, _Log] = {}

    def admit(self, windows: Sequence[Window], call: str, now_ms: int | None = None) -> Admission:
        now = now_ms if now_ms is not None else int(time.time() * 1000)
        logs = [self._logs.setdefault(window.stem, _Log()) for window in windows]
        refused, retry = None, 0
        for index, (window, log) in enumerate(zip(windows, logs, strict=True)):
            log.purge(now)
            if refused is None and log.total + window.amount > window.limit:
                refused, retry = index, WINDOW_MS
                need, freed = log.total + window.amount - window.limit, 0
                if window.amount <= window.limit:
                    for at, amount in log.entries.values():
                        freed += amount
                        if freed >= need:
                            retry = at + WINDOW_MS - now
                            break
        if refused is None:
            for window, log in zip(windows, logs, strict=True):
                log.entries[call] = (now, window.amount)
                log.total += window.amount
        return Admission(refused, retry, [log.total for log in logs], [log.reset_ms(now) for log in logs], now)

    def settle(self, windows: Sequence[Window], call: str, used: int) -> None:
        for window in windows:
            log = self._logs.get(window.stem)
            entry = log.entries.get(call) if log else None
            if log is None or entry is None:
                continue
            log.total += used - entry[1]
            if used > 0:
                log.entries[call] = (entry[0], used)
            else:
                del log.entries[call]

    def totals(self, stems: Sequence[str], now_ms: int | None = None) -> list[int]:
        now = now_ms if now_ms is not None else int(time.time() * 1000)
        found = []
        for stem in stems:
            log = self._logs.get(stem)
            if log is not None:
                log.purge(now)
            found.append(log.total if log else 0)
        return found


# KEYS: a scope's log and token total. Answers its requests and tokens of the last window. Read
# only, and like ADMIT never a scan of a whole paused log: a log whose newest entry aged out
# holds nothing; otherwise the tokens are summed over the smaller side, the aged entries (taken
# from the total) or the live ones.
USAGE = NOW + """
local edge = now - tonumber(ARGV[1])
local z, t = KEYS[1], KEYS[2]
local newest = redis.call('ZRANGE', z, '-1', '-1', 'WITHSCORES')
if not newest[2] or tonumber(newest[2]) <= edge then return {0, 0} end
local count = redis.call('ZCOUNT', z, '(' .. edge, '+inf')
local aged = redis.call('ZCARD', z) - count
local function sum(entries)
  local tokens = 0
  for j = 1, #entries do tokens = tokens + tonumber(string.match(entries[j], ':(%d+)$')) end
  return tokens
end
if aged <= count then
  local old = aged > 0 and redis.call('ZRANGE', z, 0, aged - 1) or {}
  return {count, tonumber(redis.call('GET', t) or '0') - sum(old)}
end
return {count, sum(redis.call('ZRANGE', z, aged, -1))}
"""
