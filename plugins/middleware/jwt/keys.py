"""Verification keys: the algorithms each key type allows, static keys from the config, and a
JWKS endpoint fetched with a cache, refreshed when a token names an unknown ``kid``.

Algorithm confusion is prevented here: every key carries the set of algorithms its *type* allows
(an HMAC secret only HS*, an RSA key only RS*/PS*, an EC key only the ES* of its curve), and a
token is verified only with a key whose set contains the token's ``alg``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import aiohttp
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, Key, OctKey, OKPKey, RSAKey

from junction.errors import ConfigError, UpstreamUnavailable

log = logging.getLogger("junction.jwt")

HMAC_ALGORITHMS = frozenset({"HS256", "HS384", "HS512"})
RSA_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"})
EC_ALGORITHMS = {
    "P-256": frozenset({"ES256"}),
    "P-384": frozenset({"ES384"}),
    "P-521": frozenset({"ES512"}),
    "secp256k1": frozenset({"ES256K"}),
}
OKP_ALGORITHMS = {"Ed25519": frozenset({"EdDSA", "Ed25519"}), "Ed448": frozenset({"EdDSA", "Ed448"})}
MIN_SECRET_BYTES = 32


@dataclass(frozen=True, slots=True)
class VerificationKey:
    key: Key
    algorithms: frozenset[str]
    kid: str | None = None


def algorithms_for(key: Key, declared: str | None = None) -> frozenset[str]:
    """The JWS algorithms ``key``'s type permits; a JWK's own ``alg`` narrows them further."""
    if isinstance(key, OctKey):
        allowed = HMAC_ALGORITHMS
    elif isinstance(key, RSAKey):
        allowed = RSA_ALGORITHMS
    elif isinstance(key, ECKey):
        allowed = EC_ALGORITHMS.get(key.curve_name, frozenset())
    elif isinstance(key, OKPKey):
        allowed = OKP_ALGORITHMS.get(key.curve_name, frozenset())
    else:
        allowed = frozenset()
    if declared is not None:
        allowed = allowed & {declared}
    return allowed


def _restrict(keys: Iterable[VerificationKey], only: frozenset[str]) -> list[VerificationKey]:
    if not only:
        return list(keys)
    return [VerificationKey(k.key, k.algorithms & only, k.kid) for k in keys if k.algorithms & only]


def static_keys(secret: str | None, public_keys: list[str], only: frozenset[str]) -> list[VerificationKey]:
    """Keys from ``secret`` and ``public_keys``; a bad value is a ConfigError naming it."""
    keys: list[VerificationKey] = []
    if secret is not None:
        if len(secret.encode()) < MIN_SECRET_BYTES:
            raise ConfigError(f"middleware.jwt.secret: must be at least {MIN_SECRET_BYTES} bytes for HS256")
        if "-----BEGIN" in secret:
            raise ConfigError("middleware.jwt.secret: looks like a PEM key; put public keys in public_keys")
        oct_key = OctKey.import_key(secret.encode())
        keys.append(VerificationKey(oct_key, HMAC_ALGORITHMS))
    for index, pem in enumerate(public_keys):
        key = _import_pem(pem, f"middleware.jwt.public_keys[{index}]")
        keys.append(VerificationKey(key, algorithms_for(key)))
    return _restrict(keys, only)


def _import_pem(pem: str, where: str) -> Key:
    for key_type in (RSAKey, ECKey, OKPKey):
        try:
            key = key_type.import_key(pem.encode())
        except (JoseError, ValueError, TypeError):
            continue
        if key.is_private:
            raise ConfigError(f"{where}: is a private key; configure the public key only")
        return key
    raise ConfigError(f"{where}: not a PEM-encoded RSA, EC or Ed25519 public key")


def keys_from_jwks(document: Any, only: frozenset[str]) -> list[VerificationKey]:
    """Signature keys of a JWKS document. Symmetric (``oct``) keys are never taken from a URL, and
    keys of an unknown type are skipped (RFC 7517 §5)."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError("not a JWKS document (no 'keys' list)")
    keys: list[VerificationKey] = []
    for entry in document["keys"]:
        if not isinstance(entry, dict) or entry.get("kty") not in ("RSA", "EC", "OKP"):
            continue
        if entry.get("use", "sig") != "sig":
            continue
        try:
            key = (
                RSAKey.import_key(entry)
                if entry["kty"] == "RSA"
                else (ECKey.import_key(entry) if entry["kty"] == "EC" else OKPKey.import_key(entry))
            )
        except (JoseError, ValueError, TypeError, KeyError) as error:
            log.warning("skipping an unreadable JWKS key (kid %r): %s", entry.get("kid"), error)
            continue
        declared = entry.get("alg") if isinstance(entry.get("alg"), str) else None
        keys.append(VerificationKey(key, algorithms_for(key, declared), entry.get("kid")))
    return _restrict(keys, only)


class JwksKeys:
    """The keys published at ``url``: fetched on first use, reused for ``cache_seconds``, and
    refetched early when a token names a ``kid`` we do not know — at most once per
    ``min_refresh_seconds``, so a flood of bogus ``kid`` values cannot hammer the endpoint."""

    def __init__(
        self,
        url: str,
        *,
        cache_seconds: float,
        min_refresh_seconds: float,
        timeout_seconds: float,
        only: frozenset[str],
    ) -> None:
        self.url = url
        self._cache_seconds = cache_seconds
        self._min_refresh = min_refresh_seconds
        self._timeout = aiohttp.ClientTimeout(total=timeout_seconds)
        self._only = only
        self._keys: list[VerificationKey] = []
        self._fetched_at: float | None = None
        self._failed_at: float | None = None
        self._lock = asyncio.Lock()
        self._session: aiohttp.ClientSession | None = None
        #: How many times the endpoint was fetched (observable by tests and logs).
        self.fetches = 0

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=self._timeout)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def current(self) -> list[VerificationKey]:
        """The cached keys, fetching them first when none are cached or the cache is stale."""
        fetched = self._fetched_at
        if fetched is None or time.monotonic() - fetched >= self._cache_seconds:
            await self._refresh(fetched)
        return self._keys

    def _recently_failed(self) -> bool:
        return self._failed_at is not None and time.monotonic() - self._failed_at < self._min_refresh

    async def refresh_for_unknown_kid(self) -> list[VerificationKey]:
        """Refetch because a token names an unknown ``kid``, unless we fetched very recently."""
        fetched = self._fetched_at
        if fetched is None or time.monotonic() - fetched >= self._min_refresh:
            await self._refresh(fetched)
        return self._keys

    async def _refresh(self, seen: float | None) -> None:
        async with self._lock:
            if self._fetched_at != seen:
                return  # another request refreshed while we waited
            if not self._keys and self._recently_failed():
                raise UpstreamUnavailable(
                    "the JWT signing keys could not be fetched from the configured "
                    "jwks_url; retrying shortly",
                    code="jwks_unavailable",
                )
            try:
                document = await self._fetch()
                self._keys = keys_from_jwks(document, self._only)
            except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as error:
                if not self._keys:
                    self._failed_at = time.monotonic()
                    raise UpstreamUnavailable(
                        f"the JWT signing keys could not be fetched from the configured jwks_url: {error}",
                        code="jwks_unavailable",
                    ) from error
                log.warning(
                    "refreshing the JWKS from %s failed (%s); keeping the %d cached keys",
                    self.url,
                    error,
                    len(self._keys),
                )
            self._fetched_at = time.monotonic()

    async def _fetch(self) -> Any:
        if self._session is None:
            raise aiohttp.ClientError("the JWT authenticator was not started")
        self.fetches += 1
        async with self._session.get(self.url, headers={"accept": "application/json"}) as response:
            if response.status != 200:
                raise aiohttp.ClientError(f"{self.url} answered HTTP {response.status}")
            return await response.json(content_type=None)
