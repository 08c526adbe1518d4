"""A call's server-side tools, by the name the model calls them: the bridge's HTTP tools
(``server_tools``, loaded once per worker until they change) and its connected bridges
(``connected_bridges``, see :mod:`junction.agents.connected`), its MCP servers' tools and, for
knowledge in tool mode, ``search_knowledge`` (:mod:`junction.agents.knowledge_tool`). Each kind
satisfies :class:`ServerTool`.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Protocol

import msgspec

from junction.agents.http_tools import HttpToolClient, ToolResult, failure
from junction.agents.knowledge_tool import uses_knowledge_tool
from junction.domain.bridges.service import CallVariables
from junction.domain.bridges.templating import check_known
from junction.domain.invalidation import OrgCache
from junction.errors import InvalidRequest
from junction.plugins.call import Call
from junction.schemas.chat import ChatRequest, FunctionDefinition, Tool
from junction.stores.documents.bridges import ResolvedBridge
from junction.stores.documents.tools import HttpTool, ToolRepository
from junction.stores.notify import ChangeBus

#: ``max_tool_rounds`` of a bridge that sets none.
DEFAULT_MAX_TOOL_ROUNDS = 3
_arguments = msgspec.json.Decoder(dict[str, Any])


class ServerTool(Protocol):
    """A tool the gateway runs itself."""

    @property
    def definition(self) -> Tool:
        """The tool as the model is offered it."""
        ...

    async def run(self, call: Call, arguments: dict[str, Any]) -> ToolResult:
        """Run it for ``call`` with the model's arguments; failures are results with ``error``."""
        ...


def decode_arguments(text: str) -> dict[str, Any] | None:
    try:
        return _arguments.decode(text or "{}")
    except msgspec.DecodeError:
        return None


@dataclass(frozen=True, slots=True)
class LoadedTool:
    tool: HttpTool
    #: Its sealed header values, opened (kept in memory only, like org credentials).
    secrets: dict[str, str]


@dataclass(frozen=True, slots=True)
class HttpServerTool:
    loaded: LoadedTool
    #: The bound arguments' values for this call.
    bound: dict[str, Any]
    client: HttpToolClient

    @property
    def definition(self) -> Tool:
        return definition(self.loaded.tool)

    async def run(self, call: Call, arguments: dict[str, Any]) -> ToolResult:
        return await self.client.call(self.loaded.tool, self.loaded.secrets, {**arguments, **self.bound})


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
        offered = [server.definition for server in self.tools.values()]
        return msgspec.structs.replace(request, tools=[*client, *offered])

    async def run(self, call: Call, name: str, arguments_text: str) -> ToolResult:
        arguments = decode_arguments(arguments_text)
        if arguments is None:
            return failure("the arguments are not a JSON object", 0.0)
        return await self.tools[name].run(call, arguments)


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


class HttpTools:
    """Finds a bridge's HTTP tools; each is read once per worker until it changes."""

    def __init__(self, tools: ToolRepository, changes: ChangeBus | None, client: HttpToolClient, *,
                 ttl: float) -> None:
        self._tools = tools
        self._client = client
        self._cache: OrgCache[LoadedTool | None] = OrgCache(
            "tool", changes, ttl=ttl, record_id=lambda loaded: loaded.tool.id if loaded else None)

    def start(self) -> None:
        self._cache.start()

    def close(self) -> None:
        self._cache.close()

    async def add(self, tools: dict[str, ServerTool], call: Call, resolved: ResolvedBridge) -> None:
        org_id = resolved.bridge.org_id
        variables = call.state.get(CallVariables)
        values = variables.values if variables is not None else {}
        bound_names: set[str] = set()
        for tool_id in resolved.config.server_tools or ():
            loaded = await self._cache.get(org_id, tool_id, lambda tool_id=tool_id: self._load(org_id, tool_id))
            if loaded is None:
                raise InvalidRequest(f"bridge {resolved.bridge.slug!r}: server tool {tool_id!r} does not exist",
                                     param="server_tools", code="tool_not_found")
            missing = [name for name in loaded.tool.bound if name not in values]
            if missing:
                raise InvalidRequest(f"variables: tool {loaded.tool.name!r} needs {', '.join(missing)}",
                                     param="variables", code="missing_variable")
            bound = {name: values[name] for name in loaded.tool.bound}
            bound_names.update(loaded.tool.bound)
            tools[loaded.tool.name] = HttpServerTool(loaded, bound, self._client)
        if resolved.config.server_tools:  # the bridges stage left this check to us: we know the bound names
            check_known(resolved.config.prompt, resolved.config.variables, values, resolved.bridge.slug,
                        also=bound_names)

    async def _load(self, org_id: str, tool_id: str) -> LoadedTool | None:
        found = await self._tools.many(org_id, [tool_id])
        if not found:
            return None
        return LoadedTool(found[0], self._tools.reveal(found[0]))


def max_rounds(resolved: ResolvedBridge) -> int:
    rounds = resolved.config.max_tool_rounds
    return DEFAULT_MAX_TOOL_ROUNDS if rounds is None else rounds


class ToolAdder(Protocol):
    async def add(self, tools: dict[str, ServerTool], call: Call, resolved: ResolvedBridge) -> None:
        """Add the bridge's tools of one kind to ``tools`` (by name); raise for a broken bridge."""
        ...


class ToolCatalog:
    """A call's :class:`Toolbox`: every kind of server tool its bridge lists."""

    def __init__(self, kinds: list[ToolAdder]) -> None:
        self._kinds = kinds

    async def toolbox(self, call: Call) -> Toolbox | None:
        """``None`` when the call runs no bridge, or one with no server-side tools."""
        resolved = call.state.get(ResolvedBridge)
        if resolved is None:
            return None
        config = resolved.config
        if not (config.server_tools or config.connected_bridges or config.mcp_servers
                or uses_knowledge_tool(resolved)):
            return None
        tools: dict[str, ServerTool] = {}
        for kind in self._kinds:
            await kind.add(tools, call, resolved)
        return Toolbox(tools, max_rounds(resolved))
