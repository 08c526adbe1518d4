"""Console sessions, kept server-side in the cache store: Redis when ``[stores] cache`` is Redis
(so every node and worker sees them), else in this process's memory (the embedded default).

The browser holds only a random token (the cookie); the store keys sessions by its SHA-256, so
the store never holds a value that would open a session. A session expires ``ttl`` seconds after
sign-in; sign-out deletes it.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from typing import Any, Protocol

import msgspec

from junction.plugins.protocols import Principal

KEY_PREFIX = "junction:ui:session:"


class Session(msgspec.Struct, kw_only=True):
    principal: Principal
    #: The synchronizer token every form and mutation of this session must carry.
    csrf_token: str
    expires_at: float


class SessionStore(Protocol):
    async def put(self, digest: str, session: Session, ttl: int) -> None: ...

    async def get(self, digest: str) -> Session | None: ...

    async def delete(self, digest: str) -> None: ...


def new_token() -> str:
    return secrets.token_urlsafe(32)


def digest_of(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


class MemorySessions:
    """One process's sessions (the embedded default runs one worker)."""

    def __init__(self) -> None:
        self._sessions: dict[str, Session] = {}

    async def put(self, digest: str, session: Session, ttl: int) -> None:
        now = time.time()
        # Dropping the expired ones on each sign-in bounds the dict without a sweeper task.
        for stale in [key for key, value in self._sessions.items() if value.expires_at <= now]:
            del self._sessions[stale]
        self._sessions[digest] = session

    async def get(self, digest: str) -> Session | None:
        session = self._sessions.get(digest)
        if session is None or session.expires_at <= time.time():
            return None
        return session

    async def delete(self, digest: str) -> None:
        self._sessions.pop(digest, None)


class RedisSessions:
    """Sessions as Redis strings with the session's lifetime as their TTL."""

    def __init__(self, redis: Any) -> None:
        self._redis = redis
        self._decoder = msgspec.json.Decoder(Session)

    async def put(self, digest: str, session: Session, ttl: int) -> None:
        await self._redis.set(KEY_PREFIX + digest, msgspec.json.encode(session), ex=ttl)

    async def get(self, digest: str) -> Session | None:
        raw = await self._redis.get(KEY_PREFIX + digest)
        if raw is None:
            return None
        session = self._decoder.decode(raw)
        return session if session.expires_at > time.time() else None

    async def delete(self, digest: str) -> None:
        await self._redis.delete(KEY_PREFIX + digest)
