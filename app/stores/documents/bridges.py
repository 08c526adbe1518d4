"""Bridge records (saved model configurations, their versions, what a call resolves) and the
:class:`BridgeRepository` Protocol of the document store (see :mod:`junction.stores.documents.protocol`
for the rules every repository follows: org confinement, errors, change events)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, Protocol, runtime_checkable

import msgspec
from msgspec import UNSET, UnsetType

from junction.schemas.chat import ResponseFormat, Tool
from junction.stores.documents.protocol import BudgetPeriod, _Record

BridgeStatus = Literal["active", "paused"]
#: ``chatbot``: end users call it from a web page with short-lived tokens (``/api/v1/chatbots``).
BridgeType = Literal["chat", "chatbot"]


class BridgeVariable(_Record, kw_only=True, forbid_unknown_fields=True):
    name: str
    required: bool = False
    default: str | None = None


class SecretRef(_Record, forbid_unknown_fields=True):
    """A header value read from the gateway's environment (a ``JUNCTION_SECRET_*`` variable)."""

    env: str


class McpServer(_Record, kw_only=True, forbid_unknown_fields=True):
    """An MCP server (streamable HTTP) whose tools a bridge offers its model."""

    url: str
    headers: dict[str, SecretRef] = {}


class ChatbotSettings(_Record, kw_only=True, forbid_unknown_fields=True):
    """How a ``chatbot`` bridge meets browsers: the page origins allowed (CORS) and each end
    user's requests a minute (``None``: no limit)."""

    allowed_origins: list[str] = []
    rpm_per_end_user: Annotated[int, msgspec.Meta(ge=1)] | None = None


KnowledgeMode = Literal["prompt", "tool"]


class BridgeKnowledge(_Record, kw_only=True, forbid_unknown_fields=True):
    """A bridge's RAG collections. ``prompt``: the chunks nearest the user's last message fill
    the prompt's ``{{context}}``, each headed by its chunk id for citations. ``tool``: the model
    gets a ``search_knowledge`` tool, run server-side by the tool loop."""

    collections: list[str]
    mode: KnowledgeMode = "prompt"
    top_k: int = 4
    min_score: float | None = None


class BridgeConfig(_Record, kw_only=True):
    """What a call to a bridge uses: the draft, or a snapshot of it in a :class:`BridgeVersion`."""

    model: str
    prompt: str = ""
    variables: list[BridgeVariable] = []
    params: dict[str, Any] = {}
    response_format: ResponseFormat | None = None
    tools: list[Tool] = []
    fallback_model: str | None = None
    #: Ids of the org's HTTP tools the gateway runs itself when the model calls them.
    server_tools: list[str] | None = None
    #: Model calls that may run server-side tools before the answer is returned (``None``: 3).
    max_tool_rounds: Annotated[int, msgspec.Meta(ge=0, le=20)] | None = None
    #: Other bridges of the org (ids or slugs) the model may ask, as tools.
    connected_bridges: list[str] | None = None
    #: MCP servers whose tools the model may call.
    mcp_servers: list[McpServer] | None = None
    knowledge: BridgeKnowledge | None = None


class NewBridge(BridgeConfig, kw_only=True, forbid_unknown_fields=True):
    """A bridge to create: its first draft, and how it is named."""

    slug: str
    name: str
    status: BridgeStatus = "active"
    #: ``None`` reads as ``chat``.
    type: BridgeType | None = None
    chatbot: ChatbotSettings | None = None
    #: The bridge's own limits, over every caller of it (not versioned: they bound traffic).
    rpm: int | None = None
    tpm: int | None = None
    budget_usd: float | None = None
    budget_period: BudgetPeriod | None = None


class BridgePatch(_Record, kw_only=True, forbid_unknown_fields=True):
    """A PATCH body: absent fields stay as they are; ``null`` clears a nullable field."""

    slug: str | UnsetType = UNSET
    name: str | UnsetType = UNSET
    model: str | UnsetType = UNSET
    prompt: str | UnsetType = UNSET
    variables: list[BridgeVariable] | UnsetType = UNSET
    params: dict[str, Any] | UnsetType = UNSET
    response_format: ResponseFormat | None | UnsetType = UNSET
    tools: list[Tool] | UnsetType = UNSET
    fallback_model: str | None | UnsetType = UNSET
    server_tools: list[str] | None | UnsetType = UNSET
    max_tool_rounds: Annotated[int, msgspec.Meta(ge=0, le=20)] | None | UnsetType = UNSET
    connected_bridges: list[str] | None | UnsetType = UNSET
    mcp_servers: list[McpServer] | None | UnsetType = UNSET
    knowledge: BridgeKnowledge | None | UnsetType = UNSET
    status: BridgeStatus | UnsetType = UNSET
    type: BridgeType | None | UnsetType = UNSET
    chatbot: ChatbotSettings | None | UnsetType = UNSET
    rpm: int | None | UnsetType = UNSET
    tpm: int | None | UnsetType = UNSET
    budget_usd: float | None | UnsetType = UNSET
    budget_period: BudgetPeriod | None | UnsetType = UNSET


class Bridge(BridgeConfig, kw_only=True):
    """A bridge with its editable draft inline (the inherited fields); snapshots live in
    :class:`BridgeVersion`."""

    id: str
    org_id: str
    slug: str
    name: str
    status: BridgeStatus
    #: The version calls use; ``None`` until one is published (calls then use the draft).
    published_version: int | None = None
    #: Highest version number created so far (0 when none).
    latest_version: int = 0
    created_at: datetime
    updated_at: datetime
    rpm: int | None = None
    tpm: int | None = None
    budget_usd: float | None = None
    budget_period: BudgetPeriod | None = None
    type: BridgeType | None = None
    chatbot: ChatbotSettings | None = None

    def draft(self) -> BridgeConfig:
        return BridgeConfig(**{name: getattr(self, name) for name in BridgeConfig.__struct_fields__})


class BridgeVersion(_Record, kw_only=True):
    bridge_id: str
    org_id: str
    version: int
    config: BridgeConfig
    created_at: datetime


class ResolvedBridge(_Record, kw_only=True):
    """What a call runs: the bridge, and the published config (or the draft, ``version=None``)."""

    bridge: Bridge
    version: int | None
    config: BridgeConfig



@runtime_checkable
class BridgeRepository(Protocol):
    async def create(self, org_id: str, spec: NewBridge) -> Bridge:
        """Conflict when the org already has the slug; InvalidRequest for a malformed slug."""
        ...

    async def get(self, org_id: str, id_or_slug: str) -> Bridge: ...

    async def list(self, org_id: str) -> list[Bridge]: ...

    async def update(self, org_id: str, bridge_id: str, patch: BridgePatch) -> Bridge:
        """Edit the draft (and name/slug/status); published versions do not change."""
        ...

    async def delete(self, org_id: str, bridge_id: str) -> None:
        """Delete the bridge, its versions and its threads."""
        ...

    async def create_version(self, org_id: str, bridge_id: str) -> BridgeVersion:
        """Snapshot the current draft as version ``latest_version + 1``."""
        ...

    async def get_version(self, org_id: str, bridge_id: str, version: int) -> BridgeVersion: ...

    async def list_versions(self, org_id: str, bridge_id: str) -> list[BridgeVersion]: ...

    async def publish(self, org_id: str, bridge_id: str, version: int) -> Bridge:
        """Make calls use ``version``; publishing an older one is the rollback."""
        ...

    async def resolve(self, org_id: str, id_or_slug: str) -> ResolvedBridge:
        """The bridge and the config a call runs (published version, else the draft)."""
        ...
