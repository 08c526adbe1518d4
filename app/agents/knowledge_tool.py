"""Knowledge in tool mode: a bridge with ``knowledge.mode = "tool"`` offers its model the
``search_knowledge`` tool (:func:`junction.domain.rag.context.tool_definition`); the loop runs it
here, in process, by searching the bridge's collections for the model's ``query`` on behalf of the
caller. The passages come back headed by their chunk ids, so the model can cite them."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgspec

from junction.agents.http_tools import ToolResult, failure
from junction.domain.rag.context import TOOL_NAME, tool_definition
from junction.errors import JunctionError
from junction.plugins.call import Call
from junction.plugins.services import KnowledgeSearch
from junction.schemas.chat import Tool
from junction.stores.documents.bridges import BridgeKnowledge, ResolvedBridge

if TYPE_CHECKING:
    from junction.agents.toolbox import ServerTool

_encoder = msgspec.json.Encoder()


def uses_knowledge_tool(resolved: ResolvedBridge) -> bool:
    knowledge = resolved.config.knowledge
    return knowledge is not None and knowledge.mode == "tool"


@dataclass(frozen=True, slots=True)
class KnowledgeTool:
    knowledge: BridgeKnowledge
    org_id: str
    search: KnowledgeSearch
    definition: Tool

    async def run(self, call: Call, arguments: dict[str, Any]) -> ToolResult:
        started = time.perf_counter()
        if not isinstance(arguments.get("query"), str):
            return failure('query: a string is needed ({"query": "..."})', started)
        try:
            content = await self.search.run_tool(call.principal, self.org_id, self.knowledge,
                                                 _encoder.encode(arguments).decode())
        except JunctionError as error:  # a deleted collection, an embeddings failure: the model is told
            return failure(f"{TOOL_NAME} failed: {error.message}", started)
        return ToolResult(content=content, latency_ms=(time.perf_counter() - started) * 1000)


class KnowledgeTools:
    """Adds ``search_knowledge`` to the toolbox of a bridge whose knowledge is in tool mode."""

    def __init__(self, search: KnowledgeSearch) -> None:
        self._search = search
        self._definition = msgspec.convert(tool_definition(), Tool)

    async def add(self, tools: dict[str, ServerTool], call: Call, resolved: ResolvedBridge) -> None:
        if uses_knowledge_tool(resolved):
            assert resolved.config.knowledge is not None
            tools[TOOL_NAME] = KnowledgeTool(resolved.config.knowledge, resolved.bridge.org_id, self._search,
                                             self._definition)
