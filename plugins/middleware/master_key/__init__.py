"""The ``master-key`` authenticator: the operator's master key grants full access."""

from junction.middleware.master_key.authenticator import MasterKeyAuthenticator
from junction.plugins import MiddlewareConfig, MiddlewareSpec, hookimpl


@hookimpl
def register_middleware(register):
    register(MiddlewareSpec(name="master-key", config_type=MiddlewareConfig, create=MasterKeyAuthenticator))
