"""The ``master-key`` authenticator: the operator's master key grants full access."""

from app.plugins import MiddlewareConfig, MiddlewareSpec, hookimpl
from plugins.middleware.master_key.authenticator import MasterKeyAuthenticator


@hookimpl
def register_middleware(register):
    register(MiddlewareSpec(name="master-key", config_type=MiddlewareConfig, create=MasterKeyAuthenticator))
