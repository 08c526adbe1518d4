"""The ``jwt`` authenticator against generated HS256/RS256/ES256 keys and a real JWKS endpoint."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, OctKey, RSAKey

from junction.errors import AuthenticationFailed, ConfigError
from junction.middleware.jwt.authenticator import JwtAuthenticator
from junction.middleware.jwt.config import JwtConfig
from junction.plugins import PluginContext
from junction.settings import Settings
from tests.fakes.jwks_server import FakeJwks

SECRET = "a-shared-secret-of-at-least-32-bytes!!"
ISSUER = "https://idp.example.test/"
AUDIENCE = "junction"


def make(**config: Any) -> JwtAuthenticator:
    return JwtAuthenticator(msgspec.convert(config, JwtConfig), PluginContext(settings=Settings()))


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {
        "sub": "user-1",
        "org_id": "org-a",
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + 300,
        "scope": "chat admin",
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def sign(key: Any, alg: str, payload: dict[str, Any], **header: Any) -> str:
    return jwt.encode({"alg": alg, **header}, payload, key, algorithms=[alg])


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@pytest.fixture(scope="module")
def rsa_key() -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": "rsa-1"})


@pytest.fixture(scope="module")
def ec_key() -> ECKey:
    return ECKey.generate_key("P-256", parameters={"kid": "ec-1"})


def public_pem(key: RSAKey | ECKey) -> str:
    return key.as_pem(private=False).decode()


async def rejected(authenticator: JwtAuthenticator, token: str) -> str:
    with pytest.raises(AuthenticationFailed) as caught:
        await authenticator.authenticate(bearer(token))
    assert token not in caught.value.message
    return caught.value.message


# --- HS256 -------------------------------------------------------------------------------------


async def test_hs256_token_gives_the_claims_principal() -> None:
    auth = make(secret=SECRET, issuer=ISSUER, audience=AUDIENCE)
    principal = await auth.authenticate(bearer(sign(OctKey.import_key(SECRET), "HS256", claims())))
    assert principal is not None
    assert (principal.kind, principal.org_id, principal.user_id) == ("jwt", "org-a", "user-1")
    assert principal.scopes == {"chat", "admin"}


async def test_the_principal_carries_the_tokens_expiry() -> None:
    """Keys this caller issues may not outlive the token (see check_within_issuer)."""
    key = OctKey.import_key(SECRET)
    exp = int(time.time()) + 300
    auth = make(secret=SECRET, issuer=ISSUER, audience=AUDIENCE, require_exp=False)
    principal = await auth.authenticate(bearer(sign(key, "HS256", claims(exp=exp))))
    assert principal is not None and principal.expires_at == datetime.fromtimestamp(exp, UTC)
    unbounded = await auth.authenticate(bearer(sign(key, "HS256", claims(exp=None))))
    assert unbounded is not None and unbounded.expires_at is None
    # an expiry past the calendar's end bounds nothing, and is not a 500
    far = await auth.authenticate(bearer(sign(key, "HS256", claims(exp=10**20))))
    assert far is not None and far.expires_at is None


async def test_claim_paths_and_scope_lists_are_configurable() -> None:
    auth = make(secret=SECRET, org_claim="tenant.id", user_claim="email", scope_claim="scp")
    token = sign(
        OctKey.import_key(SECRET),
        "HS256",
        claims(tenant={"id": "org-z"}, email="a@example.test", scp=["chat"], org_id=None),
    )
    principal = await auth.authenticate(bearer(token))
    assert principal is not None
    assert (principal.org_id, principal.user_id, principal.scopes) == ("org-z", "a@example.test", {"chat"})


async def test_token_without_scope_claim_gets_default_scopes() -> None:
    auth = make(secret=SECRET)
    principal = await auth.authenticate(bearer(sign(OctKey.import_key(SECRET), "HS256", claims(scope=None))))
    assert principal is not None and principal.scopes == {"chat"}


async def test_expired_token_is_refused() -> None:
    auth = make(secret=SECRET, leeway=0)
    token = sign(OctKey.import_key(SECRET), "HS256", claims(exp=int(time.time()) - 5))
    assert "expired" in await rejected(auth, token)


async def test_leeway_tolerates_small_clock_skew() -> None:
    auth = make(secret=SECRET, leeway=60)
    token = sign(OctKey.import_key(SECRET), "HS256", claims(exp=int(time.time()) - 5))
    assert await auth.authenticate(bearer(token)) is not None


async def test_token_not_yet_valid_is_refused() -> None:
    auth = make(secret=SECRET, leeway=0)
    token = sign(OctKey.import_key(SECRET), "HS256", claims(nbf=int(time.time()) + 600))
    assert "not yet valid" in await rejected(auth, token)


async def test_token_without_exp_is_refused() -> None:
    auth = make(secret=SECRET)
    token = sign(OctKey.import_key(SECRET), "HS256", claims(exp=None))
    assert "exp" in await rejected(auth, token)


async def test_wrong_audience_is_refused() -> None:
    auth = make(secret=SECRET, audience=["junction", "gateway"])
    assert await auth.authenticate(bearer(sign(OctKey.import_key(SECRET), "HS256", claims(aud="gateway"))))
    message = await rejected(auth, sign(OctKey.import_key(SECRET), "HS256", claims(aud="another-api")))
    assert "audience" in message


async def test_wrong_issuer_is_refused() -> None:
    auth = make(secret=SECRET, issuer=ISSUER)
    message = await rejected(auth, sign(OctKey.import_key(SECRET), "HS256", claims(iss="https://evil.test/")))
    assert "issuer" in message


async def test_missing_issuer_is_refused_when_one_is_configured() -> None:
    auth = make(secret=SECRET, issuer=ISSUER)
    assert "iss" in await rejected(auth, sign(OctKey.import_key(SECRET), "HS256", claims(iss=None)))


async def test_wrong_secret_is_refused() -> None:
    auth = make(secret=SECRET)
    token = sign(OctKey.import_key("another-secret-that-is-32-bytes-long!!"), "HS256", claims())
    assert "signature" in await rejected(auth, token)


async def test_tampered_payload_is_refused() -> None:
    auth = make(secret=SECRET)
    header, _, signature = sign(OctKey.import_key(SECRET), "HS256", claims()).split(".")
    forged = b64(json.dumps(claims(org_id="org-b")).encode())
    assert "signature" in await rejected(auth, f"{header}.{forged}.{signature}")


async def test_alg_none_is_refused() -> None:
    auth = make(secret=SECRET)
    token = f"{b64(json.dumps({'alg': 'none', 'typ': 'JWT'}).encode())}.{b64(json.dumps(claims()).encode())}."
    assert "none" in await rejected(auth, token)
    uppercase = f"{b64(json.dumps({'alg': 'NONE'}).encode())}.{b64(json.dumps(claims()).encode())}."
    assert "none" in await rejected(auth, uppercase)


async def test_non_jwt_credentials_are_left_to_other_authenticators() -> None:
    auth = make(secret=SECRET)
    for headers in (
        {},
        {"authorization": "Bearer sk-junction-abc"},
        {"x-api-key": "jk_abc.def"},
        {"authorization": "Basic dXNlcjpwYXNz"},
        {"authorization": "Bearer a.b.c"},
    ):
        assert await auth.authenticate(headers) is None


def test_short_secret_and_no_key_source_stop_start_up() -> None:
    with pytest.raises(ConfigError, match="middleware.jwt.secret"):
        make(secret="short")
    with pytest.raises(ConfigError, match="middleware.jwt"):
        make()
    with pytest.raises(ConfigError, match=r"public_keys\[0\]"):
        make(public_keys=["not a pem"])


# --- RS256 / ES256 with configured public keys -------------------------------------------------


async def test_rs256_and_es256_with_configured_public_keys(rsa_key: RSAKey, ec_key: ECKey) -> None:
    auth = make(public_keys=[public_pem(rsa_key), public_pem(ec_key)], audience=AUDIENCE)
    for key, alg in ((rsa_key, "RS256"), (ec_key, "ES256")):
        principal = await auth.authenticate(bearer(sign(key, alg, claims())))
        assert principal is not None and principal.org_id == "org-a"


async def test_token_signed_by_another_rsa_key_is_refused(rsa_key: RSAKey) -> None:
    auth = make(public_keys=[public_pem(rsa_key)])
    other = RSAKey.generate_key(2048)
    assert "signature" in await rejected(auth, sign(other, "RS256", claims()))


async def test_algorithm_confusion_hs256_signed_with_the_public_key_is_refused(rsa_key: RSAKey) -> None:
    """The classic attack: the RSA public key (which is public) used as an HMAC secret."""
    pem = public_pem(rsa_key)
    auth = make(public_keys=[pem])
    signing_input = (
        f"{b64(json.dumps({'alg': 'HS256', 'typ': 'JWT'}).encode())}.{b64(json.dumps(claims()).encode())}"
    )
    for secret in (pem.encode(), pem.strip().encode()):
        signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
        message = await rejected(auth, f"{signing_input}.{b64(signature)}")
        assert "HS256" in message and "not accepted" in message


async def test_ec_key_does_not_verify_another_curves_algorithm(ec_key: ECKey) -> None:
    auth = make(public_keys=[public_pem(ec_key)])
    p384 = ECKey.generate_key("P-384")
    assert "ES384" in await rejected(auth, sign(p384, "ES384", claims()))


async def test_algorithms_option_restricts_further(rsa_key: RSAKey) -> None:
    auth = make(public_keys=[public_pem(rsa_key)], algorithms=["PS256"])
    assert "RS256" in await rejected(auth, sign(rsa_key, "RS256", claims()))
    assert await auth.authenticate(bearer(sign(rsa_key, "PS256", claims()))) is not None


# --- JWKS -------------------------------------------------------------------------------------


@pytest.fixture
def jwks_server() -> Iterator[FakeJwks]:
    server = FakeJwks().start()
    yield server
    server.stop()


async def started(**config: Any) -> JwtAuthenticator:
    auth = make(**config)
    await auth.start()
    return auth


async def test_jwks_keys_verify_tokens_and_are_cached(
    jwks_server: FakeJwks, rsa_key: RSAKey, ec_key: ECKey
) -> None:
    jwks_server.publish(rsa_key.as_dict(private=False), ec_key.as_dict(private=False))
    auth = await started(jwks_url=jwks_server.jwks_url, issuer=ISSUER)
    try:
        for _ in range(3):
            assert await auth.authenticate(bearer(sign(rsa_key, "RS256", claims(), kid="rsa-1")))
            assert await auth.authenticate(bearer(sign(ec_key, "ES256", claims(), kid="ec-1")))
        assert len(jwks_server.requests) == 1  # fetched once, then served from the cache
    finally:
        await auth.close()


async def test_unknown_kid_refetches_the_rotated_jwks(jwks_server: FakeJwks, rsa_key: RSAKey) -> None:
    jwks_server.publish(rsa_key.as_dict(private=False))
    auth = await started(jwks_url=jwks_server.jwks_url, jwks_min_refresh_seconds=0)
    try:
        assert await auth.authenticate(bearer(sign(rsa_key, "RS256", claims(), kid="rsa-1")))
        rotated = RSAKey.generate_key(2048, parameters={"kid": "rsa-2"})
        token = sign(rotated, "RS256", claims(sub="after-rotation"), kid="rsa-2")
        jwks_server.publish(rotated.as_dict(private=False))  # the issuer rotated its keys
        principal = await auth.authenticate(bearer(token))
        assert principal is not None and principal.user_id == "after-rotation"
        assert len(jwks_server.requests) == 2
        # the retired key is gone from the set: its tokens now fail
        message = await rejected(auth, sign(rsa_key, "RS256", claims(), kid="rsa-1"))
        assert "rsa-1" in message
    finally:
        await auth.close()


async def test_unknown_kid_refetches_at_most_once_per_interval(
    jwks_server: FakeJwks, rsa_key: RSAKey
) -> None:
    jwks_server.publish(rsa_key.as_dict(private=False))
    auth = await started(jwks_url=jwks_server.jwks_url, jwks_min_refresh_seconds=60)
    try:
        stranger = RSAKey.generate_key(2048)
        for attempt in range(5):
            message = await rejected(auth, sign(stranger, "RS256", claims(), kid=f"bogus-{attempt}"))
            assert "kid" in message
        assert len(jwks_server.requests) == 1
    finally:
        await auth.close()


async def test_jwks_never_supplies_hmac_keys(jwks_server: FakeJwks) -> None:
    """A symmetric key published at a URL is public: it must not verify anything."""
    oct_key = OctKey.import_key(SECRET, parameters={"kid": "shared"})
    jwks_server.publish(oct_key.as_dict(private=True))
    auth = await started(jwks_url=jwks_server.jwks_url)
    try:
        message = await rejected(auth, sign(oct_key, "HS256", claims(), kid="shared"))
        assert "no signing key with kid 'shared'" in message
    finally:
        await auth.close()


async def test_unreachable_jwks_is_a_server_side_error(rsa_key: RSAKey) -> None:
    from junction.errors import UpstreamUnavailable
    from junction.testing.upstream import free_port

    auth = await started(jwks_url=f"http://127.0.0.1:{free_port()}/jwks.json", jwks_timeout_seconds=1)
    try:
        with pytest.raises(UpstreamUnavailable, match="jwks_url"):
            await auth.authenticate(bearer(sign(rsa_key, "RS256", claims(), kid="rsa-1")))
    finally:
        await auth.close()
