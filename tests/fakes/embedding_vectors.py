"""Deterministic fake embedding vectors: the same text always gives the same vector, so tests can
check that the gateway returned each input's own vector, in order."""

from __future__ import annotations

import hashlib


def fake_vector(text: str, dimensions: int = 8) -> list[float]:
    """``dimensions`` floats in [-1, 1), exactly representable in float32 (base64 round-trips)."""
    digest = hashlib.sha256(text.encode()).digest()
    while len(digest) < dimensions:
        digest += hashlib.sha256(digest).digest()
    return [(byte - 128) / 128 for byte in digest[:dimensions]]
