"""The request pipeline, in one place and in order:

authenticate → (bridge expansion) → authorize → rate limits → cache lookup → route (+ the org's
own provider credentials) → provider (with fallbacks) → after: cache fill, limit accounting,
usage observers.

Each stage is a list of plugin objects (see :mod:`app.plugins.protocols`); an empty stage costs a
loop over an empty list. Ingresses call :meth:`Gateway.authenticate` before reading the body, then
:meth:`Gateway.complete` or :meth:`Gateway.open_stream`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Protocol, TypeVar

from app.errors import AuthenticationFailed, InvalidRequest, JunctionError, PermissionDenied, is_retryable
from app.plugins.manager import LoadedPlugins
from app.plugins.protocols import CallContext, CallOutcome, EmbeddingsAdapter, InferenceRequest, Principal
from app.routing.router import Deployment, Router
from app.schemas.chat import ChatRequest, ChatResponse, Usage
from app.schemas.embeddings import EmbeddingRequest, EmbeddingResponse
from app.schemas.stream import StreamEvent, UsageReport
from app.settings import Settings

log = logging.getLogger("junction.pipeline")

Answer = TypeVar("Answer")

ANONYMOUS = Principal(id="anonymous", kind="anonymous", scopes=frozenset({"chat", "admin"}))


#: ``model`` prefix of a bridge call; such requests are expanded by the BridgeExpander first.
BRIDGE_MODEL_PREFIX = "bridge/"


class BridgeExpander(Protocol):
    async def expand(self, call: CallContext, request: ChatRequest) -> ChatRequest:
        """The request to route for a ``bridge/<id-or-slug>`` model (prompt, params, model); sets
        ``call.bridge_id``/``bridge_version``/``fallback_model``/``org_id``."""
        ...


class CredentialResolver(Protocol):
    async def apply(self, org_id: str | None, deployments: tuple[Deployment, ...]) -> tuple[Deployment, ...]:
        """``deployments`` using the org's own provider keys where it stored some."""
        ...


class Gateway:
    """Holds the started plugins and runs every request through the pipeline."""

    def __init__(self, settings: Settings, plugins: LoadedPlugins, router: Router, *,
                 bridges: BridgeExpander | None = None, credentials: CredentialResolver | None = None) -> None:
        self.settings = settings
        self.plugins = plugins
        self.router = router
        self._bridges = bridges
        self._credentials = credentials
        self._authenticators = plugins.authenticators
        self._limiters = plugins.rate_limiters
        self._caches = plugins.caches
        self._observers = plugins.observers
        self._auth_disabled = settings.auth.disabled

    async def start(self) -> None:
        for component in self.plugins.components:
            start = getattr(component, "start", None)
            if start is not None:
                await start()

    async def close(self) -> None:
        for component in reversed(self.plugins.components):
            close = getattr(component, "close", None)
            if close is not None:
                try:
                    await close()
                except Exception:  # shutdown goes on for the others; the failure is logged
                    log.exception("closing %r failed", component)

    # --- authenticate, authorize ------------------------------------------------------------

    async def authenticate(self, headers: Mapping[str, str]) -> Principal:
        """The first authenticator that recognises the caller wins; none → 401."""
        if self._auth_disabled:
            return ANONYMOUS
        for authenticator in self._authenticators:
            principal = await authenticator.authenticate(headers)
            if principal is not None:
                return principal
        if "authorization" in headers or "x-api-key" in headers:
            raise AuthenticationFailed("invalid API key", code="invalid_api_key")
        raise AuthenticationFailed(
            "missing API key: send 'Authorization: Bearer <key>' or 'x-api-key: <key>'",
            code="missing_api_key")

    @staticmethod
    def authorize(principal: Principal, scope: str, model: str | None = None) -> None:
        if scope not in principal.scopes:
            raise PermissionDenied(f"this key lacks the {scope!r} scope", code="insufficient_scope")
        if model is not None and principal.models is not None and model not in principal.models:
            raise PermissionDenied(f"this key may not use model {model!r}", param="model",
                                   code="model_not_allowed")

    # --- non-streaming ----------------------------------------------------------------------

    async def complete(self, call: CallContext, request: ChatRequest) -> ChatResponse:
        try:
            request = await self._expand(call, request)
            deployments = await self._before(call, request)
            if self._caches:
                for cache in self._caches:
                    cached = await cache.lookup(call, request)
                    if cached is not None:
                        call.cache_hit = True
                        await self._after(call, request, 200, cached.usage)
                        return cached
            response = await self._first_success(
                call, deployments, lambda d: d.provider.complete(request, d.target))
        except JunctionError as error:
            await self._after(call, request, error.status, None, error.error_type)
            raise
        for cache in self._caches:
            await cache.store(call, request, response)
        await self._after(call, request, 200, response.usage)
        return response

    async def _first_success(self, call: CallContext, deployments: Sequence[Deployment],
                             attempt: Callable[[Deployment], Awaitable[Answer]]) -> Answer:
        """The first deployment's answer; on a retryable failure, the next one's (fallbacks)."""
        last = len(deployments) - 1
        for index, deployment in enumerate(deployments):
            try:
                answer = await attempt(deployment)
            except JunctionError as error:
                if index == last or not is_retryable(error):
                    raise
                log.info("deployment %s failed (%s); trying the next", deployment.label, error.message)
                continue
            self._routed(call, deployment, index)
            return answer
        raise AssertionError("unreachable: the router returns at least one deployment")

    # --- streaming --------------------------------------------------------------------------

    async def open_stream(self, call: CallContext, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        """Start a stream and return its events. Everything that can fail before the first event
        (auth, limits, routing, the upstream's HTTP status) fails here, as a normal HTTP error,
        and a failed deployment falls back to the next one."""
        try:
            request = await self._expand(call, request)
            deployments = await self._before(call, request)
            last = len(deployments) - 1
            for attempt, deployment in enumerate(deployments):
                events = aiter(deployment.provider.stream(request, deployment.target))
                try:
                    first = await anext(events)
                except JunctionError as error:
                    await events.aclose()
                    if attempt == last or not is_retryable(error):
                        raise
                    continue
                self._routed(call, deployment, attempt)
                return self._relay(call, request, first, events)
        except JunctionError as error:
            await self._after(call, request, error.status, None, error.error_type)
            raise
        raise AssertionError("unreachable: the router returns at least one deployment")

    async def _relay(self, call: CallContext, request: ChatRequest, first: StreamEvent,
                     events: AsyncIterator[StreamEvent]) -> AsyncIterator[StreamEvent]:
        usage: Usage | None = None
        status, error_type = 200, None
        try:
            yield first
            async for event in events:
                if isinstance(event, UsageReport):
                    usage = event.usage
                yield event
        except JunctionError as error:
            status, error_type = error.status, error.error_type
            raise
        finally:
            await events.aclose()  # type: ignore[attr-defined]
            await self._after(call, request, status, usage, error_type)

    # --- embeddings -------------------------------------------------------------------------

    async def embed(self, call: CallContext, request: EmbeddingRequest) -> EmbeddingResponse:
        """Embeddings through the same stages as chat, minus the cache. Deployments whose
        provider has no embeddings endpoint are skipped; if none has one, a 400 names the model."""
        try:
            deployments = [d for d in await self._before(call, request)
                           if isinstance(d.provider, EmbeddingsAdapter)]
            if not deployments:
                raise InvalidRequest(f"model {request.model!r}: its provider offers no embeddings",
                                     param="model", code="embeddings_not_supported")
            response = await self._first_success(
                call, deployments, lambda d: d.provider.embed(request, d.target))  # type: ignore[attr-defined]
        except JunctionError as error:
            await self._after(call, request, error.status, None, error.error_type)
            raise
        usage = Usage(prompt_tokens=response.usage.prompt_tokens, completion_tokens=0,
                      total_tokens=response.usage.total_tokens)
        await self._after(call, request, 200, usage)
        return response

    # --- shared stages ----------------------------------------------------------------------

    async def _expand(self, call: CallContext, request: ChatRequest) -> ChatRequest:
        """A bridge call becomes the bridge's request; the caller's model allow-list is then
        checked against the bridge's model (in ``_before``)."""
        if self._bridges is None or not request.model.startswith(BRIDGE_MODEL_PREFIX):
            return request
        self.authorize(call.principal or ANONYMOUS, "chat")
        return await self._bridges.expand(call, request)

    async def _before(self, call: CallContext, request: InferenceRequest) -> tuple[Deployment, ...]:
        principal = call.principal or ANONYMOUS
        self.authorize(principal, "chat", request.model)
        for limiter in self._limiters:
            await limiter.check(call, request)
        deployments = self.router.resolve(request.model)
        fallback = call.fallback_model  # a bridge's; only for a key allowed to use that model too
        if fallback and (principal.models is None or fallback in principal.models):
            deployments = deployments + self.router.resolve(fallback)
        org_id = call.org_id = call.org_id or principal.org_id
        if self._credentials is not None and org_id is not None:
            deployments = await self._credentials.apply(org_id, deployments)
        return deployments

    @staticmethod
    def _routed(call: CallContext, deployment: Deployment, attempt: int) -> None:
        call.deployment = deployment.label
        call.response_headers["x-junction-deployment"] = deployment.label
        if attempt:
            call.fallback_used = True
            call.response_headers["x-junction-fallback"] = "true"

    async def _after(self, call: CallContext, request: InferenceRequest, status: int, usage: Usage | None,
                     error_type: str | None = None) -> None:
        if not (self._limiters or self._observers):
            return
        for limiter in self._limiters:
            await limiter.record(call, usage)
        if self._observers:
            outcome = CallOutcome(status=status, usage=usage, error_type=error_type,
                                  latency_ms=(time.perf_counter() - call.started) * 1000)
            for observer in self._observers:
                try:
                    await observer.observe(call, request, outcome)
                except Exception:  # an observer must not turn a served answer into an error
                    log.exception("usage observer %r failed", observer)
