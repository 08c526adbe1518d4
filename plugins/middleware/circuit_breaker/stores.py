"""Where breakers live: Redis (shared by every worker and node, one script per step), or this
process's memory (the embedded default). Both answer each step with ``(state, milliseconds)``:
``CLOSED``; ``OPEN`` and for how long still; ``PROBE`` (half-open, and this caller probes)."""

from __future__ import annotations

import time
from typing import Any

CLOSED, OPEN, PROBE = 0, 1, 2
#: Deployments tracked in memory at most: labels include client-chosen model names.
MAX_TRACKED = 4096

# KEYS: open, half, probe. ARGV: probe token, probe ms.
CHECK = """
local ttl = redis.call('PTTL', KEYS[1])
if ttl > 0 then return {1, ttl} end
if redis.call('EXISTS', KEYS[2]) == 1 then
  if redis.call('SET', KEYS[3], ARGV[1], 'NX', 'PX', ARGV[2]) then return {2, 0} end
  return {1, math.max(redis.call('PTTL', KEYS[3]), 1)}
end
return {0, 0}
"""
# KEYS: failures, open, half, probe. ARGV: threshold, window ms, open ms, probing (1/0).
FAIL = """
local ttl = redis.call('PTTL', KEYS[2])
if ttl > 0 then return {1, ttl} end
local failures = 0
if ARGV[4] ~= '1' then
  failures = redis.call('INCR', KEYS[1])
  if failures == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
end
if ARGV[4] == '1' or failures >= tonumber(ARGV[1]) then
  redis.call('SET', KEYS[2], '1', 'PX', ARGV[3])
  redis.call('SET', KEYS[3], '1', 'PX', tonumber(ARGV[3]) + 86400000)
  redis.call('DEL', KEYS[1], KEYS[4])
  return {1, tonumber(ARGV[3])}
end
return {0, failures}
"""
# KEYS: failures, open, half, probe.
CLOSE = """
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4])
return {0, 0}
"""


class RedisBreakers:
    def __init__(self, redis: Any, prefix: str, threshold: int, window: float, open_for: float, probe: float) -> None:
        self.prefix = prefix
        self._args = [threshold, int(window * 1000), int(open_for * 1000)]
        self._probe_ms = int(probe * 1000)
        self._check = redis.register_script(CHECK)
        self._fail = redis.register_script(FAIL)
        self._close = redis.register_script(CLOSE)

    def _keys(self, label: str) -> list[str]:
        base = self.prefix + label
        return [base + ":failures", base + ":open", base + ":half", base + ":probe"]

    async def check(self, label: str, token: str) -> tuple[int, int]:
        state, ms = await self._check(keys=self._keys(label)[1:], args=[token, self._probe_ms])
        return int(state), int(ms)

    async def fail(self, label: str, probing: bool) -> tuple[int, int]:
        state, ms = await self._fail(keys=self._keys(label), args=[*self._args, 1 if probing else 0])
        return int(state), int(ms)

    async def close(self, label: str) -> tuple[int, int]:
        await self._close(keys=self._keys(label))
        return CLOSED, 0


class _Breaker:
    __slots__ = ("failures", "half", "open_until", "probe_until", "window_ends")

    def __init__(self) -> None:
        self.failures = 0
        self.window_ends = 0.0
        self.open_until = 0.0
        self.half = False
        self.probe_until = 0.0


class MemoryBreakers:
    """The same steps on one process's memory (workers and nodes do not share them)."""

    def __init__(self, threshold: int, window: float, open_for: float, probe: float) -> None:
        self.threshold, self.window, self.open_for, self.probe = threshold, window, open_for, probe
        self._breakers: dict[str, _Breaker] = {}

    def _get(self, label: str) -> _Breaker:
        breaker = self._breakers.get(label)
        if breaker is None:
            if len(self._breakers) >= MAX_TRACKED:
                self._breakers.clear()  # bounded: forgetting old failures errs towards closed
            breaker = self._breakers[label] = _Breaker()
        return breaker

    async def check(self, label: str, token: str) -> tuple[int, int]:
        breaker, now = self._breakers.get(label), time.monotonic()
        if breaker is None:  # never failed: nothing kept (model names come from clients)
            return CLOSED, 0
        if breaker.open_until > now:
            return OPEN, _ms(breaker.open_until - now)
        if breaker.half:
            if breaker.probe_until <= now:
                breaker.probe_until = now + self.probe
                return PROBE, 0
            return OPEN, _ms(breaker.probe_until - now)
        return CLOSED, 0

    async def fail(self, label: str, probing: bool) -> tuple[int, int]:
        breaker, now = self._get(label), time.monotonic()
        if breaker.open_until > now:
            return OPEN, _ms(breaker.open_until - now)
        if not probing:
            if breaker.window_ends <= now:
                breaker.failures, breaker.window_ends = 0, now + self.window
            breaker.failures += 1
        if probing or breaker.failures >= self.threshold:
            breaker.open_until, breaker.half, breaker.probe_until, breaker.failures = now + self.open_for, True, 0.0, 0
            return OPEN, _ms(self.open_for)
        return CLOSED, breaker.failures

    async def close(self, label: str) -> tuple[int, int]:
        self._breakers.pop(label, None)
        return CLOSED, 0


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))
