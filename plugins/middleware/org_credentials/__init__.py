"""The ``org-credentials`` stage: each upstream attempt of a call made for an org uses the org's
own provider key (and base URL) when the org stored one, else the gateway's."""

from junction.plugins import (
    AttemptAnswer,
    Call,
    Deployment,
    MiddlewareConfig,
    MiddlewareSpec,
    NextAttempt,
    PluginContext,
    Stage,
    StagePlacement,
    hookimpl,
)


class OrgCredentialsStage(Stage):
    def __init__(self, config: MiddlewareConfig, context: PluginContext) -> None:
        self._credentials = context.credentials

    async def attempt(self, call: Call, deployment: Deployment, next: NextAttempt) -> AttemptAnswer:
        if call.org_id is not None and self._credentials is not None:
            deployment = await self._credentials.apply(call.org_id, deployment)
        return await next(call, deployment)


@hookimpl
def register_middleware(register):
    register(MiddlewareSpec(name="org-credentials", config_type=MiddlewareConfig, create=OrgCredentialsStage,
                            stage=StagePlacement(phase="route")))
