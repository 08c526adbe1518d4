"""Each chatbot end user's requests a minute (``chatbot.rpm_per_end_user``): a fixed one-minute
window, counted in Redis (one round trip: INCR and EXPIRE pipelined) when the cache store is
Redis, so the limit holds across nodes; per worker otherwise (the embedded default)."""

from __future__ import annotations

import hashlib
import time
from typing import Any

from junction.errors import RateLimited


class EndUserLimiter:
    def __init__(self, redis: Any | None) -> None:
        self._redis = redis
        self._local: dict[str, int] = {}
        self._local_minute = 0

    async def take(self, bridge_id: str, end_user_id: str, rpm: int | None) -> None:
        """Count one request; 429 with ``Retry-After`` past ``rpm`` this minute."""
        if rpm is None:
            return
        now = time.time()
        minute = int(now // 60)
        user = hashlib.sha256(end_user_id.encode()).hexdigest()[:24]
        key = f"junction:chatbot:rpm:{bridge_id}:{user}:{minute}"
        if self._redis is not None:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.incr(key)
                pipe.expire(key, 61)
                count, _ = await pipe.execute()
        else:
            if minute != self._local_minute:
                self._local.clear()
                self._local_minute = minute
            count = self._local[key] = self._local.get(key, 0) + 1
        if count > rpm:
            retry = max(1, int(60 - now % 60))
            raise RateLimited(f"this chat allows {rpm} messages a minute; try again in {retry} s",
                              code="end_user_rate_limited", headers={"Retry-After": str(retry)})
