"""The ``agents`` stage: the tool loop (:mod:`junction.agents.loop`) around the attempt loop. A bridge
call whose bridge has server-side tools (``server_tools``, connected bridges, MCP servers, knowledge
in tool mode) gets them offered to the model, and runs them when the model calls them, round after
round. Other calls pass straight through: the stage hands them the
inner layers themselves, with no frame of its own."""

from typing import Annotated

import msgspec

from junction.agents.connected import ConnectedBridges
from junction.agents.http_tools import HttpToolClient
from junction.agents.knowledge_tool import KnowledgeTools
from junction.agents.loop import ToolLoop
from junction.agents.mcp_tools import McpTools
from junction.agents.toolbox import HttpTools, ToolAdder, Toolbox, ToolCatalog
from junction.domain.invalidation import cache_ttl
from junction.plugins import (
    Call,
    MiddlewareConfig,
    MiddlewareSpec,
    Next,
    NextStream,
    PluginContext,
    Stage,
    StagePlacement,
    hookimpl,
)


class AgentsConfig(MiddlewareConfig, kw_only=True):
    #: Seconds between keep-alives on a stream while its tools run.
    keepalive_seconds: Annotated[float, msgspec.Meta(gt=0)] = 10.0
    #: Characters of a tool's answer handed to the model (the rest is cut).
    max_result_chars: Annotated[int, msgspec.Meta(ge=1)] = 100_000
    #: Levels of connected bridges below the one called (a → b → c is 2).
    max_bridge_depth: Annotated[int, msgspec.Meta(ge=1, le=10)] = 3
    #: Seconds an MCP server's tool list is reused before it is fetched again (per worker).
    mcp_list_ttl_seconds: Annotated[float, msgspec.Meta(ge=0)] = 60.0
    #: Seconds one MCP request (session, list or call) may take.
    mcp_timeout_seconds: Annotated[float, msgspec.Meta(gt=0)] = 30.0


class AgentStage(Stage):
    def __init__(self, config: AgentsConfig, context: PluginContext) -> None:
        settings = context.settings
        self._client = HttpToolClient(allow_private=settings.jobs.allow_private_webhooks,
                                      max_result_chars=config.max_result_chars)
        self._http_tools: HttpTools | None = None
        self._catalog: ToolCatalog | None = None
        # No documents store when plugins are only listed (``junction plugins``): no tools then.
        if context.documents is not None:
            self._http_tools = HttpTools(context.documents.tools, context.changes, self._client,
                                         ttl=cache_ttl(settings.stores.cache))
            kinds: list[ToolAdder] = [self._http_tools]
            kinds.append(McpTools(allow_private=settings.jobs.allow_private_webhooks,
                                  timeout=config.mcp_timeout_seconds, ttl=config.mcp_list_ttl_seconds))
            if context.bridge_calls is not None:
                kinds.append(ConnectedBridges(context.bridge_calls, max_depth=config.max_bridge_depth))
            if context.knowledge is not None:
                kinds.append(KnowledgeTools(context.knowledge))
            self._catalog = ToolCatalog(kinds)
        self._loop = ToolLoop(keepalive_seconds=config.keepalive_seconds)

    async def start(self) -> None:
        if self._http_tools is not None:
            self._http_tools.start()
        await self._client.start()

    async def close(self) -> None:
        if self._http_tools is not None:
            self._http_tools.close()
        await self._client.close()

    async def enter(self, call: Call) -> None:
        if self._catalog is None:
            return
        toolbox = await self._catalog.toolbox(call)
        if toolbox is not None:
            call.state[Toolbox] = toolbox

    def handle(self, call: Call, next: Next):  # returns the awaitable: no frame of its own
        toolbox = call.state.get(Toolbox)
        return next(call) if toolbox is None else self._loop.handle(call, next, toolbox)

    def stream(self, call: Call, next: NextStream):
        toolbox = call.state.get(Toolbox)
        return next(call) if toolbox is None else self._loop.stream(call, next, toolbox)


@hookimpl
def register_middleware(register):
    register(MiddlewareSpec(name="agents", config_type=AgentsConfig, create=AgentStage,
                            stage=StagePlacement(phase="route")))
