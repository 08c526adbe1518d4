"""An example third-party provider: no network, it echoes the last user message back.

It shows the whole surface a provider plugin needs: a config Struct, an adapter satisfying
``junction.plugins.ProviderAdapter``, and one ``register_providers`` hookimpl.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

from junction.plugins import PluginContext, ProviderConfig, ProviderSpec, UpstreamTarget, hookimpl
from junction.schemas.chat import ChatRequest, ChatResponse, Choice, Message, Usage
from junction.schemas.stream import Finish, StreamDone, StreamEvent, StreamStart, TextDelta, UsageReport


class EchoConfig(ProviderConfig):
    base_url: str = "local://echo"
    prefix: str = "echo"


class EchoAdapter:
    name = "echo"

    def __init__(self, config: EchoConfig, context: PluginContext) -> None:
        self.config = config

    async def start(self) -> None:
        """Nothing to open: a real provider creates its pooled HTTP client here."""

    async def close(self) -> None:
        """Nothing to close."""

    def _answer(self, request: ChatRequest) -> str:
        return f"{self.config.prefix}: {request.messages[-1].text()}"

    async def complete(self, request: ChatRequest, target: UpstreamTarget) -> ChatResponse:
        text = self._answer(request)
        usage = Usage(prompt_tokens=1, completion_tokens=len(text.split()), total_tokens=1 + len(text.split()))
        return ChatResponse(id="echo-1", created=int(time.time()), model=target.model, usage=usage,
                            choices=[Choice(index=0, message=Message(role="assistant", content=text),
                                            finish_reason="stop")])

    async def stream(self, request: ChatRequest, target: UpstreamTarget) -> AsyncIterator[StreamEvent]:
        yield StreamStart(id="echo-1", model=target.model, created=int(time.time()))
        for word in self._answer(request).split(" "):
            yield TextDelta(text=word + " ")
        yield Finish(reason="stop")
        yield UsageReport(usage=Usage(prompt_tokens=1, completion_tokens=1, total_tokens=2))
        yield StreamDone()

    async def list_models(self) -> list[str]:
        return ["parrot"]


@hookimpl
def register_providers(register):
    # It calls nothing, so it needs no key.
    register(ProviderSpec(name="echo", config_type=EchoConfig, create=EchoAdapter, needs_api_key=False))
