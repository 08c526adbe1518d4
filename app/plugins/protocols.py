"""What plugins register (specs) and the Protocols the registered objects satisfy.

Specs are plain data handed to the ``register`` callback of a start-up hook. The objects their
``create`` callables build do the per-request work, asynchronously. The pipeline's own contracts
(the :class:`~junction.plugins.call.Call`, stages, routing policies) are in :mod:`junction.plugins.call` and
:mod:`junction.plugins.stages`.
"""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

import msgspec

from junction.schemas.chat import ChatRequest, ChatResponse
from junction.schemas.embeddings import EmbeddingRequest, EmbeddingResponse
from junction.schemas.stream import StreamEvent

if TYPE_CHECKING:
    from junction.plugins.services import (
        BridgeCalls,
        BridgeExpander,
        CredentialSource,
        Embedder,
        KnowledgeSearch,
        SqlEngines,
        UpstreamClients,
        UsageLedger,
    )
    from junction.pricing import ModelPrice, PriceBook
    from junction.settings import Settings
    from junction.stores.documents.protocol import DocumentStore
    from junction.stores.notify import ChangeBus


#: What a call asks for: a chat request, or an embeddings request (``call.endpoint`` tells which).
InferenceRequest = ChatRequest | EmbeddingRequest

#: Where a stage sits, outermost first: ``observe`` sees every call whole (refusals included),
#: ``auth`` decides who may do what, ``transform`` rewrites the request (bridges, RAG),
#: ``admission`` refuses what limits and budgets do not allow, ``cache`` answers from a cache,
#: ``route`` acts on each upstream attempt (org credentials).
Phase = Literal["observe", "auth", "transform", "admission", "cache", "route"]
PHASES: tuple[Phase, ...] = ("observe", "auth", "transform", "admission", "cache", "route")

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
    #: Seconds a request waits for one of the ``max_connections`` to be free before it is refused
    #: with 503 ``gateway_overloaded`` (not counted in ``connect_timeout``).
    pool_timeout: float = 5.0
    #: The HTTP client: "httptools" (on the event loop, HTTP/1.1 parsed in C: the least CPU and
    #: latency per request), "pyreqwest" (Rust, on a thread of its own) or "aiohttp".
    http_client: Literal["httptools", "pyreqwest", "aiohttp"] = "httptools"


class MiddlewareConfig(PluginConfig):
    """Base of every middleware plugin's config Struct."""


# --- what hooks register --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PluginContext:
    """The shared services of the process, handed to every ``create`` callable.

    The :class:`~junction.runtime.Runtime` builds one per process and starts every service before any
    plugin's ``start`` (and closes them after every plugin's ``close``). Each is ``None`` when the
    plugins are only being listed (``junction plugins``), or when the configuration has none.
    """

    settings: Settings
    #: The document store (orgs, keys, credentials, bridges, threads) and the change bus that
    #: announces its mutations.
    documents: DocumentStore | None = None
    changes: ChangeBus | None = None
    #: The one shared ``redis.asyncio.Redis`` client (its connection pool) of ``[stores] cache``,
    #: when that is a ``redis://`` URL: limits, caches and counters use it, never a pool of their own.
    redis: Any | None = None
    #: One connection to that Redis that pipelines the per-call store batches of every plugin
    #: (:class:`~junction.stores.redis_pipeline.PipelinedRedis`: admissions, settles, cache fills);
    #: set whenever ``redis`` is.
    redis_pipeline: Any | None = None
    #: SQL engines by store name (``"documents"``, ``"metrics"``), built once per process.
    sql: SqlEngines | None = None
    #: Pooled HTTP clients, one per name, started and closed with the process.
    http: UpstreamClients | None = None
    #: Bridge expansion and org credentials, for the built-in stages that apply them.
    bridges: BridgeExpander | None = None
    credentials: CredentialSource | None = None
    #: Bridges calling bridges of their org (connected bridges).
    bridge_calls: BridgeCalls | None = None
    #: Prices by ``provider/model`` (the providers' shipped tables and ``[pricing]``).
    pricing: PriceBook | None = None
    #: The usage ledger: ``usage.record(event)`` queues a finished call's row (never waits).
    usage: UsageLedger | None = None
    #: Embeddings through the gateway's own ``/v1/embeddings`` path (RAG, the semantic cache);
    #: usable once the process started.
    embeddings: Embedder | None = None
    #: RAG collections searched for a bridge's model (knowledge in tool mode).
    knowledge: KnowledgeSearch | None = None


@dataclass(frozen=True, slots=True)
class RouteContext:
    """What ``register_routes`` and ``register_asgi_middleware`` hand a plugin."""

    #: The gateway's authentication (the same authenticators, in the same order): a principal,
    #: or AuthenticationFailed (401).
    authenticate: Callable[[Mapping[str, str]], Awaitable[Principal]]
    #: The objects the enabled plugins' ``create`` returned, by plugin name.
    components: Mapping[str, object]
    services: PluginContext
    #: The composition root (:class:`junction.runtime.Runtime`: gateway, domain services, usage ledger,
    #: jobs), for a built-in plugin that drives the admin services as the admin API does (the admin
    #: console); ``None`` where no app is being served.
    runtime: Any | None = None


@dataclass(frozen=True, slots=True)
class StagePlacement:
    """Where a middleware's stage sits in the pipeline: its phase (see :data:`PHASES`), and the
    names of stages it must run before or after. Constraints naming a stage that is not enabled
    are ignored; constraints that contradict each other are a start-up error naming the cycle.
    ``[pipeline] order`` in the config overrides all of it."""

    phase: Phase
    before: tuple[str, ...] = ()
    after: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ProviderSpec:
    """A provider, as registered by ``register_providers``.

    ``create(config, context)`` is called at start-up with the validated ``config_type`` instance.
    Without a ``[providers.<name>]`` table the provider is enabled when ``api_key_env`` is set in
    the environment, and takes its key from there. An enabled provider with no key anywhere (its
    table, ``api_key_env``, a ``[models]`` deployment) stops start-up, unless ``needs_api_key`` is
    false (a local server, a provider authenticating otherwise).
    """

    name: str
    config_type: type[ProviderConfig]
    create: Callable[[Any, PluginContext], ProviderAdapter]
    api_key_env: str | None = None
    needs_api_key: bool = True
    #: What the provider's models cost (see :mod:`junction.pricing`; built-ins ship ``prices.toml``).
    prices: Sequence[ModelPrice] = ()


@dataclass(frozen=True, slots=True)
class MiddlewareSpec:
    """A pipeline behaviour, as registered by ``register_middleware``.

    The object ``create(config, context)`` returns is placed by what it is: an
    :class:`Authenticator`, a :class:`~junction.plugins.stages.Stage` (then ``stage`` says where it
    sits), a :class:`~junction.plugins.stages.RoutingPolicy` (used when ``[routing] policy`` names this
    plugin), or several of these.
    """

    name: str
    config_type: type[MiddlewareConfig]
    create: Callable[[Any, PluginContext], object]
    enabled_by_default: bool = True
    stage: StagePlacement | None = None
    #: The object only backs the plugin's own routes (``register_routes``, e.g. the admin console):
    #: it need be none of Authenticator, Stage, RoutingPolicy, and takes no part in calls.
    routes_only: bool = False


def created_on_demand(target: str) -> Callable[[Any, PluginContext], Any]:
    """A spec's ``create`` that imports ``target`` (``"package.module:Class"``) only when it is
    called, then calls it with ``(config, context)``: a plugin that is registered but off (or a
    provider not configured) then adds nothing to a serving worker's memory, where each module it
    would import costs every worker (``junction serve`` spawns them fresh)."""
    module, _, name = target.partition(":")

    def create(config: Any, context: PluginContext) -> Any:
        return getattr(importlib.import_module(module), name)(config, context)

    return create


# --- per-request data -----------------------------------------------------------------------------


class Principal(msgspec.Struct, frozen=True, kw_only=True):
    """Who is calling, as established by an :class:`Authenticator`."""

    id: str
    kind: Literal["master", "key", "jwt", "anonymous", "chatbot"]
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


@dataclass(frozen=True, slots=True)
class Deployment:
    """One place a call can go: a provider, and the target of the attempt there."""

    provider_name: str
    provider: ProviderAdapter
    target: UpstreamTarget
    #: Relative weight among an alias's deployments (the default routing policy draws by it).
    weight: float = 1.0
    #: A fallback (an alias's ``fallbacks``, a bridge's fallback model), tried after the others.
    fallback: bool = False
    #: One of an alias's ``context_fallbacks``: a model with a larger context window, tried (last)
    #: when an attempt failed because the prompt did not fit.
    context_fallback: bool = False
    #: ``provider/model``, as headers, attempts and logs name the deployment.
    label: str = field(init=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "label", f"{self.provider_name}/{self.target.model}")


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
        """Answer a non-streaming request, or raise a :class:`~junction.errors.JunctionError`."""
        ...

    def stream(self, request: ChatRequest, target: UpstreamTarget) -> AsyncIterator[StreamEvent]:
        """Yield the unified events of a streamed answer, starting with ``StreamStart``.

        Errors before the first event raise :class:`~junction.errors.JunctionError`. Closing the
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
        """Embed ``request.input`` with ``target.model``, or raise a :class:`~junction.errors.JunctionError`
        (a 400 naming the field for input the provider cannot take, e.g. token arrays)."""
        ...


@runtime_checkable
class Authenticator(Protocol):
    async def authenticate(self, headers: Mapping[str, str]) -> Principal | None:
        """Return who is calling, or ``None`` when these headers carry no credential this
        authenticator understands. Raise :class:`~junction.errors.AuthenticationFailed` for a
        credential it recognises as its own but rejects."""
        ...
