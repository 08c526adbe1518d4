"""The ``jwt`` authenticator: bearer JSON Web Tokens signed with a shared secret (HS*), configured
public keys or a JWKS endpoint (RS*/PS*/ES*/EdDSA). Off unless ``[middleware.jwt]`` enables it."""

from junction.middleware.jwt.authenticator import JwtAuthenticator
from junction.middleware.jwt.config import JwtConfig
from junction.plugins import MiddlewareSpec, hookimpl


@hookimpl
def register_middleware(register):
    register(
        MiddlewareSpec(name="jwt", config_type=JwtConfig, create=JwtAuthenticator, enabled_by_default=False)
    )
