"""The services a :class:`~junction.plugins.protocols.PluginContext` offers, as Protocols.

Plugins reach the gateway's own machinery (bridges, org credentials, shared clients) only through
these, never by importing ``junction.domain`` or ``junction.runtime``: the Runtime satisfies them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from junction.plugins.call import Call
    from junction.plugins.protocols import Deployment, Principal, ProviderConfig
    from junction.schemas.chat import ChatRequest, ChatResponse
    from junction.stores.documents.bridges import BridgeKnowledge, ResolvedBridge
    from junction.stores.metrics.events import UsageEvent
    from junction.upstream.http import ErrorMapper, UpstreamClient


#: ``model`` prefix of a bridge call (``bridge/<id-or-slug>``), expanded by the BridgeExpander.
BRIDGE_MODEL_PREFIX = "bridge/"


class BridgeExpander(Protocol):
    async def expand(self, call: Call, request: ChatRequest) -> ChatRequest:
        """The request to route for a ``bridge/<id-or-slug>`` model: the bridge's prompt, params
        and model, with the caller's own fields over them. Sets ``call.org_id``,
        ``call.bridge_id``, ``call.bridge_version`` and ``call.fallback_model``. A bridge already
        resolved for this call (``call.state[ResolvedBridge]``) is not looked up again."""
        ...


class BridgeCalls(Protocol):
    """Bridges calling bridges (connected bridges, :mod:`junction.agents.connected`)."""

    async def resolve(self, org_id: str, id_or_slug: str) -> ResolvedBridge:
        """The org's bridge and the config calls use (cached); NotFound otherwise."""
        ...

    async def complete(self, call: Call) -> ChatResponse:
        """Run ``call`` through the whole pipeline, as an ingress does."""
        ...


class CredentialSource(Protocol):
    async def apply(self, org_id: str, deployment: Deployment) -> Deployment:
        """``deployment`` with the org's own provider key (and base URL) when it stored one."""
        ...


class SqlEngines(Protocol):
    def engine(self, store: str) -> AsyncEngine:
        """The process's one engine for ``[stores] <store>`` (``"documents"`` or ``"metrics"``),
        built on first use and disposed at shutdown. Raises ConfigError when that store is not a
        SQL URL."""
        ...


class UpstreamClients(Protocol):
    def client(self, name: str, config: ProviderConfig, map_error: ErrorMapper | None = None) -> UpstreamClient:
        """A pooled HTTP client (timeouts and pool size from ``config``), started with the process
        and closed at shutdown: ask for it in ``create``. One per ``name``: asking twice returns
        the same client."""
        ...


class UsageLedger(Protocol):
    def record(self, event: UsageEvent) -> bool:
        """Queue a finished call's row in the bounded buffer of the usage writer; never waits.
        ``False`` when the buffer was full and the event was dropped (the writer counts and logs
        it)."""
        ...

    def record_many(self, events: list[UsageEvent]) -> int:
        """Queue rows as :meth:`record` does, in one go; how many were accepted (the rest were
        dropped, counted)."""
        ...

    @property
    def dropped(self) -> int:
        """Events dropped by this process since it started."""
        ...


class Embedder(Protocol):
    async def embed(self, principal: Principal, org_id: str | None, model: str, texts: list[str]) -> list[bytes]:
        """Each text's embedding by ``model`` (``provider/model``, an alias, ``local/<name>``),
        as unit-length little-endian float32 bytes, through the gateway's own embeddings path:
        limits, usage and org credentials apply, on behalf of ``principal`` and ``org_id``."""
        ...


class KnowledgeSearch(Protocol):
    """A bridge's RAG collections searched for the model (knowledge in tool mode)."""

    async def run_tool(self, principal: Principal, org_id: str, knowledge: BridgeKnowledge,
                       arguments: str) -> str:
        """The content of one ``search_knowledge`` result for the tool call's JSON ``arguments``:
        the best chunks of ``knowledge.collections``, each headed by its chunk id."""
        ...
