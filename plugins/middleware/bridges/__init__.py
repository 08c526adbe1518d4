"""The ``bridges`` stage: a call for ``bridge/<id-or-slug>`` becomes the bridge's request (its
prompt with the call's variables, its params under the caller's, its model and fallback), and
the caller must be allowed the bridge's model."""

from junction.plugins import (
    Call,
    MiddlewareConfig,
    MiddlewareSpec,
    PluginContext,
    Stage,
    StagePlacement,
    hookimpl,
    require_model,
)
from junction.plugins.services import BRIDGE_MODEL_PREFIX
from junction.schemas.chat import ChatRequest


class BridgeStage(Stage):
    def __init__(self, config: MiddlewareConfig, context: PluginContext) -> None:
        self._bridges = context.bridges

    async def enter(self, call: Call) -> None:
        request = call.request
        if self._bridges is None or not isinstance(request, ChatRequest):
            return
        if not request.model.startswith(BRIDGE_MODEL_PREFIX):
            return
        call.request = expanded = await self._bridges.expand(call, request)
        require_model(call.principal, expanded.model)


@hookimpl
def register_middleware(register):
    register(MiddlewareSpec(name="bridges", config_type=MiddlewareConfig, create=BridgeStage,
                            stage=StagePlacement(phase="transform")))
