"""Plugins used by the plugin-manager tests, loaded through hand-made entry points."""

from __future__ import annotations

from collections.abc import AsyncIterator

from junction.plugins import (
    MiddlewareConfig,
    MiddlewareSpec,
    ProviderConfig,
    ProviderSpec,
    Stage,
    StagePlacement,
    hookimpl,
)
from junction.schemas.chat import ChatResponse, Choice, Message
from junction.schemas.stream import StreamDone, StreamStart, TextDelta


class EchoConfig(ProviderConfig):
    base_url: str = "http://echo.invalid"
    prefix: str = "echo"


class EchoAdapter:
    name = "echo"

    def __init__(self, config: EchoConfig, context) -> None:
        self.config = config

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def complete(self, request, target) -> ChatResponse:
        text = f"{self.config.prefix}: {request.messages[-1].text()}"
        return ChatResponse(id="echo-1", created=0, model=target.model,
                            choices=[Choice(index=0, message=Message(role="assistant", content=text),
                                            finish_reason="stop")])

    async def stream(self, request, target) -> AsyncIterator:
        yield StreamStart(id="echo-1", model=target.model, created=0)
        yield TextDelta(text=request.messages[-1].text())
        yield StreamDone()

    async def list_models(self) -> list[str]:
        return ["one"]


class EchoPlugin:
    @hookimpl
    def register_providers(self, register):
        register(ProviderSpec(name="echo", config_type=EchoConfig, create=EchoAdapter, api_key_env="ECHO_TEST_KEY",
                              needs_api_key=False))


class MisnamedPlugin:
    @hookimpl
    def register_providers(self, register):
        register(ProviderSpec(name="not-my-name", config_type=EchoConfig, create=EchoAdapter))


class TypoPlugin:
    @hookimpl
    def register_provider(self, register):  # misspelt: no such hook
        raise AssertionError("never called")


class NoisyConfig(MiddlewareConfig):
    level: int = 1


class Inert:
    """Satisfies none of the pipeline Protocols."""


class InertPlugin:
    @hookimpl
    def register_middleware(self, register):
        register(MiddlewareSpec(name="inert", config_type=NoisyConfig, create=lambda config, context: Inert()))


def _refuse(config, context):
    raise ValueError("the region 'mars-1' does not exist")


class BrokenPlugin:
    @hookimpl
    def register_providers(self, register):
        register(ProviderSpec(name="broken", config_type=EchoConfig, create=_refuse))


class PlainConfig(MiddlewareConfig):
    """Not a ProviderConfig: no api_key, no base_url."""


class WrongConfigPlugin:
    @hookimpl
    def register_providers(self, register):
        register(ProviderSpec(name="wrongconfig", config_type=PlainConfig, create=EchoAdapter))  # type: ignore[arg-type]


echo = EchoPlugin()
broken = BrokenPlugin()
wrongconfig = WrongConfigPlugin()
misnamed = MisnamedPlugin()
typo = TypoPlugin()
inert = InertPlugin()


class Counting(Stage):
    """A stage for the ordering tests."""

    async def enter(self, call) -> None:
        return None


class LoopA:
    @hookimpl
    def register_middleware(self, register):
        register(MiddlewareSpec(name="loop-a", config_type=MiddlewareConfig, create=lambda c, x: Counting(),
                                stage=StagePlacement(phase="admission", before=("loop-b",))))


class LoopB:
    @hookimpl
    def register_middleware(self, register):
        register(MiddlewareSpec(name="loop-b", config_type=MiddlewareConfig, create=lambda c, x: Counting(),
                                stage=StagePlacement(phase="admission", before=("loop-a",))))


class PlacedInert:
    @hookimpl
    def register_middleware(self, register):
        register(MiddlewareSpec(name="placed-inert", config_type=MiddlewareConfig, create=lambda c, x: Inert(),
                                stage=StagePlacement(phase="cache")))


class Unplaced:
    @hookimpl
    def register_middleware(self, register):
        register(MiddlewareSpec(name="unplaced", config_type=MiddlewareConfig, create=lambda c, x: Counting()))


loop_a = LoopA()
loop_b = LoopB()
placed_inert = PlacedInert()
unplaced = Unplaced()


class RoutesPlugin:
    """Adds a route and an ASGI middleware, reaching its own created object by name."""

    @hookimpl
    def register_middleware(self, register):
        register(MiddlewareSpec(name="routes-sample", config_type=NoisyConfig, create=lambda c, x: Counting(),
                                stage=StagePlacement(phase="observe")))

    @hookimpl
    def register_routes(self, register, context):
        from typing import Any

        from litestar import Request, get

        mine = context.components["routes-sample"]

        @get("/sample/whoami")
        async def whoami(request: Request[Any, Any, Any]) -> dict[str, str]:
            principal = await context.authenticate(request.headers)
            return {"principal": principal.id, "component": type(mine).__name__}

        register(whoami)

    @hookimpl
    def register_asgi_middleware(self, register, context):
        def factory(app):
            async def tagged(scope, receive, send):
                async def sending(message):
                    if message["type"] == "http.response.start":
                        message["headers"] = [*message.get("headers", ()), (b"x-sample", b"yes")]
                    await send(message)

                await app(scope, receive, sending)

            return tagged

        register(factory)


routes_sample = RoutesPlugin()
