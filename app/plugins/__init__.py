"""The plugin system: hook specifications, the contracts plugins satisfy, and the manager.

Plugin authors need only this package::

    from junction.plugins import hookimpl, ProviderSpec, MiddlewareSpec, Stage, StagePlacement, Call
"""

from junction.plugins.call import Attempt, Call, CallState, Outcome
from junction.plugins.hookspecs import hookimpl, hookspec
from junction.plugins.node import NodeService
from junction.plugins.protocols import (
    PHASES,
    Authenticator,
    Deployment,
    EmbeddingsAdapter,
    MiddlewareConfig,
    MiddlewareSpec,
    Phase,
    PluginContext,
    Principal,
    ProviderAdapter,
    ProviderConfig,
    ProviderSpec,
    RouteContext,
    StagePlacement,
    UpstreamTarget,
    created_on_demand,
)
from junction.plugins.stages import (
    AttemptAnswer,
    Next,
    NextAttempt,
    NextStream,
    OpenedStream,
    Reply,
    Retry,
    RoutingPolicy,
    Stage,
    StageObserver,
    require_model,
    require_scope,
)

__all__ = [
    "PHASES",
    "Attempt",
    "AttemptAnswer",
    "Authenticator",
    "Call",
    "CallState",
    "Deployment",
    "EmbeddingsAdapter",
    "MiddlewareConfig",
    "MiddlewareSpec",
    "Next",
    "NextAttempt",
    "NextStream",
    "NodeService",
    "OpenedStream",
    "Outcome",
    "Phase",
    "PluginContext",
    "Principal",
    "ProviderAdapter",
    "ProviderConfig",
    "ProviderSpec",
    "Reply",
    "Retry",
    "RouteContext",
    "RoutingPolicy",
    "Stage",
    "StageObserver",
    "StagePlacement",
    "UpstreamTarget",
    "created_on_demand",
    "hookimpl",
    "hookspec",
    "require_model",
    "require_scope",
]
