"""``[middleware.jwt]``: where the verification keys come from and which claims to trust."""

from __future__ import annotations

import msgspec

from junction.plugins import MiddlewareConfig


class JwtConfig(MiddlewareConfig):
    """At least one key source is required: ``secret`` (HS256/384/512), ``public_keys`` (PEM,
    RSA or EC; the key type decides the algorithms) or ``jwks_url``."""

    secret: str | None = None
    public_keys: list[str] = []
    jwks_url: str | None = None
    #: Required ``iss`` value, when set.
    issuer: str | None = None
    #: Accepted ``aud`` value(s); a token must name at least one of them, when set.
    audience: str | list[str] | None = None
    #: Dotted paths into the claims.
    org_claim: str = "org_id"
    user_claim: str = "sub"
    scope_claim: str = "scope"
    #: Scopes granted to a token that carries no scope claim at all.
    default_scopes: list[str] = msgspec.field(default_factory=lambda: ["chat"])
    #: Seconds of clock skew tolerated on ``exp``, ``nbf`` and ``iat``.
    leeway: int = 30
    #: Tokens without ``exp`` are refused unless this is false.
    require_exp: bool = True
    #: Further restricts the algorithms the keys allow (e.g. ``["RS256"]``); empty = all they allow.
    algorithms: list[str] = []
    #: A fetched JWKS is reused this long before it is fetched again.
    jwks_cache_seconds: float = 300.0
    #: An unknown ``kid`` refetches the JWKS at most once per this many seconds.
    jwks_min_refresh_seconds: float = 30.0
    jwks_timeout_seconds: float = 5.0
