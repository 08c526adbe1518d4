"""The plugin system: hook specifications, the Protocols plugins satisfy, and the manager.

Plugin authors need only this package::

    from app.plugins import hookimpl, ProviderSpec, MiddlewareSpec
"""

from app.plugins.hookspecs import hookimpl, hookspec
from app.plugins.protocols import (
    Authenticator,
    CallContext,
    CallOutcome,
    EmbeddingsAdapter,
    MiddlewareConfig,
    MiddlewareSpec,
    PluginContext,
    Principal,
    ProviderAdapter,
    ProviderConfig,
    ProviderSpec,
    RateLimiter,
    ResponseCache,
    UpstreamTarget,
    UsageObserver,
)

__all__ = [
    "Authenticator",
    "CallContext",
    "CallOutcome",
    "EmbeddingsAdapter",
    "MiddlewareConfig",
    "MiddlewareSpec",
    "PluginContext",
    "Principal",
    "ProviderAdapter",
    "ProviderConfig",
    "ProviderSpec",
    "RateLimiter",
    "ResponseCache",
    "UpstreamTarget",
    "UsageObserver",
    "hookimpl",
    "hookspec",
]
