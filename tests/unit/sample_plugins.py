"""Plugins used by the plugin-manager tests, loaded through hand-made entry points."""

from __future__ import annotations

from collections.abc import AsyncIterator

from app.plugins import MiddlewareConfig, MiddlewareSpec, ProviderConfig, ProviderSpec, hookimpl
from app.schemas.chat import ChatResponse, Choice, Message
from app.schemas.stream import StreamDone, StreamStart, TextDelta


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
        register(ProviderSpec(name="echo", config_type=EchoConfig, create=EchoAdapter, api_key_env="ECHO_TEST_KEY"))


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
