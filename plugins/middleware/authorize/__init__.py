"""The ``authorize`` stage: an inference call needs the ``chat`` scope, and a model the caller's
allow-list names. A bridge call's model is checked once the bridge is expanded (by the
``bridges`` stage), and the attempt loop checks the routed model once more, whatever the order."""

from junction.plugins import (
    Call,
    MiddlewareConfig,
    MiddlewareSpec,
    Stage,
    StagePlacement,
    hookimpl,
    require_model,
    require_scope,
)
from junction.plugins.services import BRIDGE_MODEL_PREFIX


class AuthorizeStage(Stage):
    async def enter(self, call: Call) -> None:
        principal = call.principal
        require_scope(principal, "chat")
        model = call.request.model
        if not model.startswith(BRIDGE_MODEL_PREFIX):
            require_model(principal, model)


@hookimpl
def register_middleware(register):
    register(MiddlewareSpec(name="authorize", config_type=MiddlewareConfig, create=lambda config, context: AuthorizeStage(),
                            stage=StagePlacement(phase="auth")))
