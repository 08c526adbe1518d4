"""``[middleware.semantic-cache]``: the semantic cache's settings (see the package docstring)."""

from __future__ import annotations

from typing import Literal

from junction.errors import ConfigError
from junction.plugins.store_guard import GuardedConfig


class SemanticCacheConfig(GuardedConfig, kw_only=True):
    #: ``serve`` answers hits; ``shadow`` only records what it would have served and how often
    #: that answer agreed with the fresh one (the hit precision), and always goes upstream.
    mode: Literal["serve", "shadow"] = "serve"
    #: Embeddings of the questions (any embeddings model Junction routes, e.g. ``openai/...``).
    embedding_model: str = "local/all-MiniLM-L6-v2"
    #: Cosine similarity a cached question needs (then the near-miss guard decides).
    threshold: float = 0.85
    #: A shadow hit agrees when the cached and the fresh answer are this similar (or equal).
    agreement: float = 0.9
    ttl_seconds: int = 3600
    #: Questions kept per scope (org, bridge and version, model and the rest of the request); the
    #: oldest go first. Each lookup compares the question with all of them.
    max_entries_per_scope: int = 200
    #: Questions longer than this (characters) are not cached.
    max_question_chars: int = 2000
    #: Answers larger than this (encoded) are not stored.
    max_entry_bytes: int = 256 * 1024
    key_prefix: str = "junction:semcache:"
    #: In-memory backend only (no Redis cache store): scopes kept, least recently used dropped.
    memory_max_scopes: int = 10_000
    #: Shadow-mode samples kept per org for ``GET /api/v1/semantic-cache/stats``.
    samples_kept: int = 50

    def check(self) -> None:
        if not 0 < self.threshold <= 1 or not 0 < self.agreement <= 1:
            raise ConfigError("middleware.semantic-cache.threshold: must be in (0, 1] (agreement too)")
        for name in ("ttl_seconds", "max_entries_per_scope", "max_question_chars", "max_entry_bytes",
                     "memory_max_scopes", "samples_kept"):
            if getattr(self, name) < 1:
                raise ConfigError(f"middleware.semantic-cache.{name}: must be at least 1")
        if "/" not in self.embedding_model:
            raise ConfigError("middleware.semantic-cache.embedding_model: name a model as 'provider/model'")
