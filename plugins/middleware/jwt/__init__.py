"""The ``jwt`` authenticator: bearer JSON Web Tokens signed with a shared secret (HS*), configured
public keys or a JWKS endpoint (RS*/PS*/ES*/EdDSA). Off unless ``[middleware.jwt]`` enables it."""

from typing import Any

from junction.middleware.jwt.config import JwtConfig
from junction.plugins import MiddlewareSpec, PluginContext, hookimpl


def create_authenticator(config: JwtConfig, context: PluginContext) -> Any:
    # Imported only when the plugin is enabled: every worker imports this package, and joserfc,
    # cryptography and aiohttp (the JWKS client) are megabytes that most never use.
    from junction.middleware.jwt.authenticator import JwtAuthenticator

    return JwtAuthenticator(config, context)


@hookimpl
def register_middleware(register):
    register(
        MiddlewareSpec(name="jwt", config_type=JwtConfig, create=create_authenticator, enabled_by_default=False)
    )
