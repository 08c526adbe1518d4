"""The ``api-keys`` authenticator: keys issued by the admin API (``sk-jn-<prefix>-<secret>``),
looked up by prefix in the document store, verified by hash, cached in process and dropped from
the cache by change notifications (revocation reaches every worker within a second)."""

from junction.middleware.api_keys.authenticator import ApiKeyAuthenticator
from junction.middleware.api_keys.config import ApiKeysConfig
from junction.plugins import MiddlewareSpec, hookimpl


@hookimpl
def register_middleware(register):
    register(MiddlewareSpec(name="api-keys", config_type=ApiKeysConfig, create=ApiKeyAuthenticator))
