"""Connected bridges: a bridge offers other bridges of its org to its model as tools (agent to
agent). Calling one runs that bridge as a call of its own through the whole pipeline (limits,
routing, its own tools, usage), asked the model's ``message`` with the caller's variables; its
answer's text is the result. Its usage is recorded for it, and added to the caller's too.

The graph is checked when the outermost bridge is called: a cycle (``a → b → a``) or nesting
deeper than ``max_bridge_depth`` is a 400 naming the path. Each nested call carries its chain
(``call.state[BridgeChain]``), so the limits also hold if bridges change while it runs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgspec

from junction.agents.http_tools import ToolResult, failure
from junction.domain.bridges.service import CallVariables
from junction.errors import InvalidRequest, JunctionError, NotFound
from junction.plugins.call import Call
from junction.plugins.services import BRIDGE_MODEL_PREFIX, BridgeCalls
from junction.schemas.chat import ChatRequest, ChatResponse, FunctionDefinition, Message, Tool
from junction.stores.documents.bridges import ResolvedBridge

if TYPE_CHECKING:
    from junction.agents.toolbox import ServerTool
    from junction.domain.bridges.service import BridgeService
    from junction.pipeline.gateway import Gateway

_PARAMETERS = {"type": "object", "properties": {"message": {
    "type": "string", "description": "What to ask this agent, in full: it sees nothing else of the conversation"}},
    "required": ["message"]}


class BridgeChain(msgspec.Struct, frozen=True):
    """The bridges a nested call runs under, outermost first (its own last)."""

    ids: tuple[str, ...]
    slugs: tuple[str, ...]


def tool_name(slug: str) -> str:
    return f"bridge_{slug.replace('-', '_')}"[:64]


@dataclass(frozen=True, slots=True)
class ConnectedBridge:
    callee: ResolvedBridge
    chain: BridgeChain
    calls: BridgeCalls

    @property
    def definition(self) -> Tool:
        bridge = self.callee.bridge
        return Tool(function=FunctionDefinition(
            name=tool_name(bridge.slug), parameters=_PARAMETERS,
            description=f"Ask the agent {bridge.name!r} (another assistant); returns its answer."))

    async def run(self, call: Call, arguments: dict[str, Any]) -> ToolResult:
        started = time.perf_counter()
        bridge = self.callee.bridge
        message = arguments.get("message")
        if not isinstance(message, str) or not message:
            return failure("message: a non-empty string is needed", started)
        if bridge.status == "paused":
            return failure(f"the agent {bridge.slug!r} is paused", started)
        variables = call.state.get(CallVariables)
        request = ChatRequest(model=f"{BRIDGE_MODEL_PREFIX}{bridge.id}",
                              messages=[Message(role="user", content=message)],
                              extra_fields={"variables": msgspec.Raw(msgspec.json.encode(
                                  variables.values if variables is not None else {}))})
        nested = Call(request_id=f"{call.request_id}.{len(self.chain.ids)}", endpoint="bridges.connected",
                      principal=call.principal, request=request, org_id=bridge.org_id)
        nested.state[ResolvedBridge] = self.callee
        nested.state[BridgeChain] = BridgeChain((*self.chain.ids, bridge.id), (*self.chain.slugs, bridge.slug))
        try:
            response = await self.calls.complete(nested)
        except JunctionError as error:
            return failure(f"the agent {bridge.slug!r} failed: {error.message}", started)
        answer = response.choices[0].message.text() if response.choices else ""
        return ToolResult(content=answer, latency_ms=(time.perf_counter() - started) * 1000, usage=response.usage)


class ConnectedBridges:
    def __init__(self, calls: BridgeCalls, *, max_depth: int) -> None:
        self._calls = calls
        self._max_depth = max_depth

    async def add(self, tools: dict[str, ServerTool], call: Call, resolved: ResolvedBridge) -> None:
        bridge = resolved.bridge
        chain = call.state.get(BridgeChain) or BridgeChain((bridge.id,), (bridge.slug,))
        if BridgeChain not in call.state:  # the outermost bridge: check the whole graph once
            await self._walk(resolved, chain)
        for ref in resolved.config.connected_bridges or ():
            callee = await self._resolve(resolved, ref)
            self._check_step(chain, callee)
            tools[tool_name(callee.bridge.slug)] = ConnectedBridge(callee, chain, self._calls)

    async def _resolve(self, caller: ResolvedBridge, ref: str) -> ResolvedBridge:
        try:
            return await self._calls.resolve(caller.bridge.org_id, ref)
        except NotFound:
            raise InvalidRequest(f"bridge {caller.bridge.slug!r}: connected bridge {ref!r} does not exist",
                                 param="connected_bridges", code="bridge_not_found") from None

    def _check_step(self, chain: BridgeChain, callee: ResolvedBridge) -> None:
        path = " → ".join((*chain.slugs, callee.bridge.slug))
        if callee.bridge.id in chain.ids:
            raise InvalidRequest(f"connected bridges form a cycle: {path}", param="connected_bridges",
                                 code="bridge_cycle")
        if len(chain.ids) > self._max_depth:
            raise InvalidRequest(f"connected bridges nest deeper than {self._max_depth} "
                                 f"([middleware.agents] max_bridge_depth): {path}",
                                 param="connected_bridges", code="bridge_depth_exceeded")

    async def _walk(self, resolved: ResolvedBridge, chain: BridgeChain) -> None:
        for ref in resolved.config.connected_bridges or ():
            callee = await self._resolve(resolved, ref)
            self._check_step(chain, callee)
            await self._walk(callee, BridgeChain((*chain.ids, callee.bridge.id), (*chain.slugs, callee.bridge.slug)))


class GatewayBridgeCalls:
    """:class:`~junction.plugins.services.BridgeCalls` over this process's gateway, which the
    :class:`~junction.runtime.Runtime` binds once it is built (plugins are created before it)."""

    def __init__(self, bridges: BridgeService) -> None:
        self._bridges = bridges
        self.gateway: Gateway | None = None

    async def resolve(self, org_id: str, id_or_slug: str) -> ResolvedBridge:
        return await self._bridges.resolve(org_id, id_or_slug)

    async def complete(self, call: Call) -> ChatResponse:
        assert self.gateway is not None, "the Runtime binds the gateway before serving"
        return await self.gateway.complete(call)
