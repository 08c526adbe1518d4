"""API keys: ``sk-jn-<prefix>-<secret>``, stored as the public prefix plus a SHA-256 digest.

Why SHA-256 and not a password hash (argon2, bcrypt): the secret is 256 random bits, not a
human-chosen password, so there is nothing to brute-force or look up in a dictionary — a slow,
salted hash buys no security here, while it would cost tens of milliseconds on *every* request
(keys are verified per request, the budget is 0.1 ms). A leaked digest still cannot be turned
back into a usable key. Verification compares digests with :func:`hmac.compare_digest`, so the
time taken does not depend on how much of a guess matched.

The prefix is random too (not derived from the secret) and unique: the store looks the key up by
prefix, then verifies the digest.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

import msgspec

KEY_MARKER = "sk-jn-"
PREFIX_HEX_CHARS = 12
_KEY_SHAPE = re.compile(
    rf"{re.escape(KEY_MARKER)}(?P<prefix>[0-9a-f]{{{PREFIX_HEX_CHARS}}})-(?P<secret>[A-Za-z0-9_-]{{43}})"
)


class GeneratedKey(msgspec.Struct, frozen=True, kw_only=True):
    """A fresh key: ``key`` is shown to the admin once; ``prefix`` and ``secret_hash`` are stored."""

    key: str
    prefix: str
    secret_hash: str

    def __repr__(self) -> str:
        return f"GeneratedKey(prefix={self.prefix!r}, key=<redacted>)"


def generate_api_key() -> GeneratedKey:
    prefix = secrets.token_hex(PREFIX_HEX_CHARS // 2)
    key = f"{KEY_MARKER}{prefix}-{secrets.token_urlsafe(32)}"
    return GeneratedKey(key=key, prefix=prefix, secret_hash=hash_api_key(key))


def hash_api_key(presented: str) -> str:
    return hashlib.sha256(presented.encode("utf-8")).hexdigest()


def key_prefix(presented: str) -> str | None:
    """The lookup prefix of a well-formed Junction key, else ``None`` (not one of ours)."""
    match = _KEY_SHAPE.fullmatch(presented)
    return match.group("prefix") if match else None


def verify_api_key(presented: str, secret_hash: str) -> bool:
    """Constant-time comparison of the presented key's digest with the stored one."""
    return hmac.compare_digest(hash_api_key(presented), secret_hash)
