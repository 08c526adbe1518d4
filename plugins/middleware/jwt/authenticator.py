"""Authenticates ``Authorization: Bearer <JWT>``.

A credential that is not shaped like a JWS compact token is not ours: ``authenticate`` returns
``None`` and the next authenticator (API keys, the master key) gets its turn. A JWT that fails any
check — algorithm, key, signature, ``exp``, ``nbf``, ``iss``, ``aud`` — is refused with a 401 that
says which check failed (never echoing the token).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from joserfc import jwt
from joserfc.errors import (
    BadSignatureError,
    ExpiredTokenError,
    InvalidClaimError,
    JoseError,
    MissingClaimError,
)

from junction.auth import presented_key
from junction.errors import AuthenticationFailed, ConfigError
from junction.middleware.jwt.config import JwtConfig
from junction.middleware.jwt.keys import JwksKeys, VerificationKey, static_keys
from junction.plugins import PluginContext, Principal

#: A token naming no ``kid`` is tried against at most this many compatible keys.
MAX_KEYS_TRIED = 8


#: Header values and claim names come from whoever sent the token: at most this much of one is
#: quoted back, and at most ``MAX_MESSAGE_CHARS`` of a message.
MAX_SHOWN_CHARS = 64
MAX_MESSAGE_CHARS = 300


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= MAX_SHOWN_CHARS else f"{text[:MAX_SHOWN_CHARS]}… ({len(text)} characters)"


def _fail(message: str, code: str = "invalid_token") -> AuthenticationFailed:
    if len(message) > MAX_MESSAGE_CHARS:
        message = message[:MAX_MESSAGE_CHARS] + "…"
    return AuthenticationFailed(f"JWT rejected: {message}", code=code)


def jws_header(token: str) -> dict[str, Any] | None:
    """The protected header of a compact JWS, or ``None`` when ``token`` is not shaped like one."""
    parts = token.split(".")
    if len(parts) != 3 or not parts[0]:
        return None
    segment = parts[0]
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
        header = json.loads(raw)
    except (binascii.Error, ValueError):
        return None
    if not isinstance(header, dict) or not isinstance(header.get("alg"), str):
        return None
    return header


def claim_at(claims: Mapping[str, Any], path: str) -> Any:
    """``claims`` at a dotted path (``"org.id"``), or ``None`` when any step is missing."""
    value: Any = claims
    for step in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(step)
    return value


class JwtAuthenticator:
    def __init__(self, config: JwtConfig, context: PluginContext) -> None:
        only = frozenset(config.algorithms)
        if "none" in {a.lower() for a in only}:
            raise ConfigError("middleware.jwt.algorithms: 'none' is never accepted")
        self._static = static_keys(config.secret, config.public_keys, only)
        self._jwks = (
            JwksKeys(
                config.jwks_url,
                cache_seconds=config.jwks_cache_seconds,
                min_refresh_seconds=config.jwks_min_refresh_seconds,
                timeout_seconds=config.jwks_timeout_seconds,
                only=only,
            )
            if config.jwks_url
            else None
        )
        if not self._static and self._jwks is None:
            raise ConfigError(
                "middleware.jwt: configure secret, public_keys or jwks_url "
                "(none left after the algorithms restriction)"
            )
        self._config = config
        self._accepted = (
            frozenset().union(*(k.algorithms for k in self._static)) if self._jwks is None else None
        )
        self._claims = self._claims_registry(config)

    @staticmethod
    def _claims_registry(config: JwtConfig) -> jwt.JWTClaimsRegistry:
        options: dict[str, Any] = {}
        if config.require_exp:
            options["exp"] = {"essential": True}
        if config.issuer is not None:
            options["iss"] = {"essential": True, "value": config.issuer}
        if config.audience is not None:
            audiences = [config.audience] if isinstance(config.audience, str) else list(config.audience)
            options["aud"] = {"essential": True, "values": audiences}
        return jwt.JWTClaimsRegistry(leeway=config.leeway, **options)

    async def start(self) -> None:
        if self._jwks is not None:
            await self._jwks.start()

    async def close(self) -> None:
        if self._jwks is not None:
            await self._jwks.close()

    @property
    def jwks(self) -> JwksKeys | None:
        return self._jwks

    async def authenticate(self, headers: Mapping[str, str]) -> Principal | None:
        token = presented_key(headers)
        if token is None:
            return None
        header = jws_header(token)
        if header is None:
            return None
        algorithm = header["alg"]
        if algorithm.lower() == "none":
            raise _fail("unsigned tokens (alg 'none') are not accepted")
        if self._accepted is not None and algorithm not in self._accepted:
            raise _fail(
                f"algorithm {_shown(algorithm)} is not accepted "
                f"(accepted: {', '.join(sorted(self._accepted))})"
            )
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise _fail("the 'kid' header must be a string")
        claims = await self._verified_claims(token, algorithm, kid)
        return self._principal(claims)

    async def _candidates(self, algorithm: str, kid: str | None) -> list[VerificationKey]:
        keys = list(self._static)
        if self._jwks is not None:
            keys.extend(await self._jwks.current())
        matching = [k for k in keys if algorithm in k.algorithms and (kid is None or k.kid in (None, kid))]
        if self._jwks is not None and kid is not None and not any(k.kid == kid for k in matching):
            # A kid we have not seen: the issuer may have rotated its keys.
            keys = [*self._static, *await self._jwks.refresh_for_unknown_kid()]
            matching = [k for k in keys if algorithm in k.algorithms and k.kid in (None, kid)]
        if kid is not None and any(k.kid == kid for k in matching):
            matching = [k for k in matching if k.kid == kid]
        return matching[:MAX_KEYS_TRIED]

    async def _verified_claims(self, token: str, algorithm: str, kid: str | None) -> dict[str, Any]:
        candidates = await self._candidates(algorithm, kid)
        if not candidates:
            if kid is not None and self._jwks is not None:
                raise _fail(f"no signing key with kid {_shown(kid)} is published at the configured jwks_url")
            raise _fail(f"algorithm {_shown(algorithm)} is not accepted by any configured key")
        decoded = None
        for candidate in candidates:
            try:
                decoded = jwt.decode(token, candidate.key, algorithms=[algorithm])
                break
            except BadSignatureError:
                continue
            except JoseError as error:
                raise _fail(f"malformed token ({error.error})") from None
        if decoded is None:
            raise _fail("signature is invalid")
        try:
            self._claims.validate(decoded.claims)
        except ExpiredTokenError:
            raise _fail("token has expired (exp)", code="token_expired") from None
        except MissingClaimError as error:
            raise _fail(f"required claim(s) missing: {error.claim}") from None
        except InvalidClaimError as error:
            raise _fail(self._describe_invalid_claim(error)) from None
        return decoded.claims

    def _describe_invalid_claim(self, error: InvalidClaimError) -> str:
        if error.claim == "nbf":
            return "token is not yet valid (nbf)"
        if error.claim == "iat":
            return "token was issued in the future (iat)"
        if error.claim == "iss":
            return f"issuer (iss) is not {self._config.issuer!r}"
        if error.claim == "aud":
            return "audience (aud) does not name this gateway"
        return f"invalid claim {error.claim!r}"

    def _principal(self, claims: dict[str, Any]) -> Principal:
        config = self._config
        user = claim_at(claims, config.user_claim)
        org = claim_at(claims, config.org_claim)
        for name, value in ((config.user_claim, user), (config.org_claim, org)):
            if value is not None and not isinstance(value, (str, int)):
                raise _fail(f"claim {name!r} must be a string")
        raw_scopes = claim_at(claims, config.scope_claim)
        if raw_scopes is None:
            scopes = frozenset(config.default_scopes)
        elif isinstance(raw_scopes, str):
            scopes = frozenset(raw_scopes.split())
        elif isinstance(raw_scopes, list) and all(isinstance(s, str) for s in raw_scopes):
            scopes = frozenset(raw_scopes)
        else:
            raise _fail(f"claim {config.scope_claim!r} must be a space-separated string or a list of strings")
        user_id = None if user is None else str(user)
        return Principal(
            id=f"jwt:{user_id or 'unknown'}",
            kind="jwt",
            scopes=scopes,
            org_id=None if org is None else str(org),
            user_id=user_id,
            expires_at=_expiry(claims.get("exp")),
        )


def _expiry(exp: Any) -> datetime | None:
    """``exp`` (already checked to be a number in the future) as a time; ``None`` when absent or
    past the calendar's end, which bounds nothing."""
    if not isinstance(exp, (int, float)) or isinstance(exp, bool):
        return None
    try:
        return datetime.fromtimestamp(exp, UTC)
    except (OverflowError, OSError, ValueError):
        return None
