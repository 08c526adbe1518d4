"""An example third-party pipeline stage: counts the text deltas of every stream as they arrive
(roughly its tokens), and shows the counts at ``GET /api/v1/token-counter`` (admin scope).

It shows the surface a middleware plugin needs: a config Struct, a ``Stage`` placed by its
``MiddlewareSpec``, a route through ``register_routes`` and an ASGI middleware through
``register_asgi_middleware``. The counts are per worker process: it is an example.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from litestar import Request, get

from junction.plugins import (
    Call,
    MiddlewareConfig,
    MiddlewareSpec,
    NextStream,
    PluginContext,
    RouteContext,
    Stage,
    StagePlacement,
    hookimpl,
    require_scope,
)
from junction.schemas.stream import StreamEvent, TextDelta


class TokenCounterConfig(MiddlewareConfig):
    #: Response header naming this plugin on every response (the ASGI middleware adds it).
    header: str = "x-token-counter"


class TokenCounter(Stage):
    def __init__(self, config: TokenCounterConfig, context: PluginContext) -> None:
        self.config = config
        self.streams: list[dict[str, Any]] = []

    async def stream(self, call: Call, next: NextStream) -> AsyncIterator[StreamEvent]:
        counted = 0
        try:
            async for event in next(call):
                if isinstance(event, TextDelta):
                    counted += 1
                yield event
        finally:  # once per stream: finished, failed, or the client left
            outcome = call.outcome
            self.streams.append({"request_id": call.request_id, "tokens": counted,
                                 "status": outcome.status if outcome else None,
                                 "deployment": call.deployment})


@hookimpl
def register_middleware(register):
    register(MiddlewareSpec(name="token-counter", config_type=TokenCounterConfig, create=TokenCounter,
                            stage=StagePlacement(phase="observe")))


@hookimpl
def register_routes(register, context: RouteContext):
    counter = context.components["token-counter"]

    @get("/api/v1/token-counter", summary="Streamed tokens counted by the token-counter example plugin")
    async def counts(request: Request[Any, Any, Any]) -> dict[str, Any]:
        require_scope(await context.authenticate(request.headers), "admin")
        return {"tokens": sum(s["tokens"] for s in counter.streams), "streams": counter.streams}

    register(counts)


@hookimpl
def register_asgi_middleware(register, context: RouteContext):
    header = context.components["token-counter"].config.header.encode()

    def factory(app):
        async def with_header(scope, receive, send):
            async def sending(message):
                if message["type"] == "http.response.start":
                    message["headers"] = [*message.get("headers", ()), (header, b"on")]
                await send(message)

            await app(scope, receive, sending if scope["type"] == "http" else send)

        return with_header

    register(factory)
