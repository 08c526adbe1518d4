"""What plugins register (specs) and the Protocols the registered objects satisfy.

Specs are plain data handed to the ``register`` callback of a start-up hook. The objects their
``create`` callables build do the per-request work, asynchronously.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

import msgspec

from app.schemas.chat import ChatRequest, ChatResponse, Usage
from app.schemas.embeddings import EmbeddingRequest, EmbeddingResponse
from app.schemas.stream import StreamEvent

if TYPE_CHECKING:
    from app.settings import Settings
    from app.stores.documents.protocol import DocumentStore
    from app.stores.notify import ChangeBus


#: What limiters and observers see: a chat request, or an embeddings request
#: (``call.endpoint`` tells which).
InferenceRequest = ChatRequest | EmbeddingRequest

# --- configuration bases --------------------------------------------------------------------------


class PluginConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Base of every plugin's config Struct: unknown keys are start-up errors."""

    enabled: bool = True


class ProviderConfig(PluginConfig):
    """Settings every provider understands; a provider subclasses it to add its own and to set
    its ``base_url`` default to the one its official SDK uses."""

    api_key: str | None = None
    base_url: str = ""
    #: Models listed by ``/v1/models``; empty means "ask the provider's list endpoint".
    models: list[str] = []
    connect_timeout: float = 10.0
    #: Seconds to wait for each read from the upstream (not the whole response).
    read_timeout: float = 600.0
    max_connections: int = 256


class MiddlewareConfig(PluginConfig):
    """Base of every middleware plugin's config Struct."""


# --- what hooks register --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PluginContext:
    """Start-up services handed to every ``create`` callable."""

    settings: Settings
    #: The document store (orgs, keys, credentials, bridges, threads) and the change bus that
    #: announces its mutations; both are started before any plugin's ``start``. ``None`` when the
    #: plugins are only being listed.
    documents: DocumentStore | None = None
    changes: ChangeBus | None = None


@dataclass(frozen=True, slots=True)
class ProviderSpec:
    """A provider, as registered by ``register_providers``.

    ``create(config, context)`` is called at start-up with the validated ``config_type`` instance.
    Without a ``[providers.<name>]`` table the provider is enabled when ``api_key_env`` is set in
    the environment, and takes its key from there.
    """

    name: str
    config_type: type[ProviderConfig]
    create: Callable[[Any, PluginContext], ProviderAdapter]
    api_key_env: str | None = None


@dataclass(frozen=True, slots=True)
class MiddlewareSpec:
    """A pipeline behaviour, as registered by ``register_middleware``."""

    name: str
    config_type: type[MiddlewareConfig]
    create: Callable[[Any, PluginContext], object]
    enabled_by_default: bool = True


# --- per-request data -----------------------------------------------------------------------------


class Principal(msgspec.Struct, frozen=True, kw_only=True):
    """Who is calling, as established by an :class:`Authenticator`."""

    id: str
    kind: Literal["master", "key", "jwt", "anonymous"]
    scopes: frozenset[str]
    org_id: str | None = None
    user_id: str | None = None
    #: Models this caller may use; ``None`` means any.
    models: frozenset[str] | None = None
    #: When the credential stops working, and its own limits (``None``: none). Authenticators fill
    #: them from data they already hold, so a key this caller issues can be bounded by them.
    expires_at: datetime | None = None
    rpm: int | None = None
    tpm: int | None = None
    budget_usd: float | None = None
    budget_period: Literal["day", "month"] | None = None


class UpstreamTarget(msgspec.Struct, frozen=True, kw_only=True):
    """Where one attempt goes: the provider's own model id and, when a deployment or an org
    overrides them, the key and base URL to use instead of the provider's configured ones."""

    model: str
    api_key: str | None = None
    base_url: str | None = None

    def __repr__(self) -> str:  # the key may be an org's decrypted credential: keep it out of logs
        key = None if self.api_key is None else "<redacted>"
        return f"UpstreamTarget(model={self.model!r}, api_key={key}, base_url={self.base_url!r})"


@dataclass(slots=True)
class CallContext:
    """Per-request state threaded through the pipeline. One is created per request; plugins
    read it and may add response headers."""

    request_id: str
    endpoint: str
    #: The request's headers, credentials included (hence not in the repr).
    headers: Mapping[str, str] = field(repr=False)
    principal: Principal | None = None
    response_headers: dict[str, str] = field(default_factory=dict)
    started: float = field(default_factory=time.perf_counter)
    #: ``provider/model`` of the deployment that answered, once routed.
    deployment: str | None = None
    fallback_used: bool = False
    cache_hit: bool = False
    #: The org the call acts for: the caller's, or for a master-key bridge call the bridge's.
    org_id: str | None = None
    #: Set when the call runs a bridge: which one, which published version (``None``: the draft),
    #: and the bridge's fallback model, tried after the primary deployments.
    bridge_id: str | None = None
    bridge_version: int | None = None
    fallback_model: str | None = None


@dataclass(slots=True)
class CallOutcome:
    """What happened, handed to observers after the response (or stream) is complete."""

    status: int
    latency_ms: float
    usage: Usage | None = None
    error_type: str | None = None


# --- the Protocols --------------------------------------------------------------------------------


@runtime_checkable
class ProviderAdapter(Protocol):
    """Translates the unified model to one provider's wire format and back.

    ``start`` runs once in the serving event loop before the first request (create pooled HTTP
    clients there); ``close`` runs at shutdown.
    """

    name: str

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def complete(self, request: ChatRequest, target: UpstreamTarget) -> ChatResponse:
        """Answer a non-streaming request, or raise a :class:`~app.errors.JunctionError`."""
        ...

    def stream(self, request: ChatRequest, target: UpstreamTarget) -> AsyncIterator[StreamEvent]:
        """Yield the unified events of a streamed answer, starting with ``StreamStart``.

        Errors before the first event raise :class:`~app.errors.JunctionError`. Closing the
        iterator early must close the upstream connection.
        """
        ...

    async def list_models(self) -> list[str]:
        """Model ids (without the provider prefix) this provider offers."""
        ...


@runtime_checkable
class EmbeddingsAdapter(Protocol):
    """Optional: a :class:`ProviderAdapter` that also has an embeddings endpoint. The gateway
    finds it by ``isinstance``; ``POST /v1/embeddings`` to a provider without it is a 400."""

    async def embed(self, request: EmbeddingRequest, target: UpstreamTarget) -> EmbeddingResponse:
        """Embed ``request.input`` with ``target.model``, or raise a :class:`~app.errors.JunctionError`
        (a 400 naming the field for input the provider cannot take, e.g. token arrays)."""
        ...


@runtime_checkable
class Authenticator(Protocol):
    async def authenticate(self, headers: Mapping[str, str]) -> Principal | None:
        """Return who is calling, or ``None`` when these headers carry no credential this
        authenticator understands. Raise :class:`~app.errors.AuthenticationFailed` for a
        credential it recognises as its own but rejects."""
        ...


@runtime_checkable
class RateLimiter(Protocol):
    async def check(self, call: CallContext, request: InferenceRequest) -> None:
        """Before routing: raise :class:`~app.errors.RateLimited` to refuse; add
        ``x-ratelimit-*`` headers to ``call.response_headers``."""
        ...

    async def record(self, call: CallContext, usage: Usage | None) -> None:
        """After the answer: account for the tokens actually used."""
        ...


@runtime_checkable
class ResponseCache(Protocol):
    async def lookup(self, call: CallContext, request: ChatRequest) -> ChatResponse | None: ...

    async def store(self, call: CallContext, request: ChatRequest, response: ChatResponse) -> None: ...


@runtime_checkable
class UsageObserver(Protocol):
    async def observe(self, call: CallContext, request: InferenceRequest, outcome: CallOutcome) -> None:
        """After every answered call (including failures): e.g. buffer a usage event. Must not
        block: the response is already on its way."""
        ...
