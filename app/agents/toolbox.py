"""A call's server-side tools: the bridge's ``server_tools`` loaded (cached per worker, dropped on
change), the definitions the model sees (bound arguments removed), and the bound values.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import msgspec

from app.domain.bridges.service import CallVariables
from app.domain.invalidation import OrgCache
from app.errors import InvalidRequest
from app.plugins.call import Call
from app.schemas.chat import ChatRequest, FunctionDefinition, Tool
from app.stores.documents.protocol import ResolvedBridge
from app.stores.documents.tools import HttpTool, ToolRepository
from app.stores.notify import ChangeBus

#: ``max_tool_rounds`` of a bridge that sets none.
DEFAULT_MAX_TOOL_ROUNDS = 3


@dataclass(frozen=True, slots=True)
class LoadedTool:
    tool: HttpTool
    #: Its sealed header values, opened (kept in memory only, like org credentials).
    secrets: dict[str, str]


@dataclass(frozen=True, slots=True)
class ServerTool:
    loaded: LoadedTool
    #: The bound arguments' values for this call.
    bound: dict[str, Any]

    @property
    def tool(self) -> HttpTool:
        return self.loaded.tool


@dataclass(frozen=True, slots=True)
class Toolbox:
    """The server-side tools of one call, by the name the model calls them."""

    tools: dict[str, ServerTool]
    max_rounds: int

    def with_definitions(self, request: ChatRequest) -> ChatRequest:
        """``request`` offering the server tools too; a client tool of the same name is refused."""
        client = request.tools or []
        for tool in client:
            if tool.function.name in self.tools:
                raise InvalidRequest(f"tools: {tool.function.name!r} is a server-side tool of this bridge; "
                                     "rename the client's tool", param="tools", code="tool_name_conflict")
        offered = [definition(server.tool) for server in self.tools.values()]
        return msgspec.structs.replace(request, tools=[*client, *offered])


def definition(tool: HttpTool) -> Tool:
    """The tool as the model sees it: bound arguments are not in its schema."""
    parameters = tool.parameters
    if tool.bound:
        parameters = copy.deepcopy(parameters)
        properties = parameters.get("properties", {})
        for name in tool.bound:
            properties.pop(name, None)
        if "required" in parameters:
            parameters["required"] = [name for name in parameters["required"] if name not in tool.bound]
    return Tool(function=FunctionDefinition(name=tool.name, description=tool.description, parameters=parameters))


class ToolCatalog:
    """Finds a call's server tools; each tool is read once per worker until it changes."""

    def __init__(self, tools: ToolRepository, changes: ChangeBus | None, *, ttl: float) -> None:
        self._tools = tools
        self._cache: OrgCache[LoadedTool | None] = OrgCache(
            "tool", changes, ttl=ttl, record_id=lambda loaded: loaded.tool.id if loaded else None)

    def start(self) -> None:
        self._cache.start()

    def close(self) -> None:
        self._cache.close()

    async def toolbox(self, call: Call) -> Toolbox | None:
        """The call's server tools, or ``None`` when it runs no bridge with any."""
        resolved = call.state.get(ResolvedBridge)
        if resolved is None or not resolved.config.server_tools:
            return None
        org_id = resolved.bridge.org_id
        variables = call.state.get(CallVariables)
        values = variables.values if variables is not None else {}
        tools: dict[str, ServerTool] = {}
        for tool_id in resolved.config.server_tools:
            loaded = await self._cache.get(org_id, tool_id, lambda tool_id=tool_id: self._load(org_id, tool_id))
            if loaded is None:
                raise InvalidRequest(f"bridge {resolved.bridge.slug!r}: server tool {tool_id!r} does not exist",
                                     param="server_tools", code="tool_not_found")
            missing = [name for name in loaded.tool.bound if name not in values]
            if missing:
                raise InvalidRequest(f"variables: tool {loaded.tool.name!r} needs {', '.join(missing)}",
                                     param="variables", code="missing_variable")
            tools[loaded.tool.name] = ServerTool(loaded, {name: values[name] for name in loaded.tool.bound})
        rounds = resolved.config.max_tool_rounds
        return Toolbox(tools, DEFAULT_MAX_TOOL_ROUNDS if rounds is None else rounds)

    async def _load(self, org_id: str, tool_id: str) -> LoadedTool | None:
        found = await self._tools.many(org_id, [tool_id])
        if not found:
            return None
        return LoadedTool(found[0], self._tools.reveal(found[0]))
