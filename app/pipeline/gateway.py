"""The gateway: authentication, then every call through the ordered stages to the attempt loop.

Ingresses call :meth:`Gateway.authenticate` before reading the body (unauthenticated bodies are
never parsed), build a :class:`~junction.plugins.call.Call`, then :meth:`Gateway.complete`,
:meth:`Gateway.embed` or :meth:`Gateway.open_stream`.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any

from junction.errors import AuthenticationFailed, InvalidRequest, JunctionError
from junction.logs import current_request
from junction.pipeline.attempts import AttemptLoop, primed
from junction.pipeline.chain import Observe, json_chain, stream_chain
from junction.plugins.call import Call
from junction.plugins.manager import LoadedPlugins
from junction.plugins.protocols import Principal
from junction.plugins.stages import RoutingPolicy, StageObserver, overridden, require_scope
from junction.routing.router import Router
from junction.schemas.chat import ChatResponse
from junction.schemas.embeddings import EmbeddingResponse
from junction.schemas.stream import StreamEvent
from junction.settings import Settings

log = logging.getLogger("junction.pipeline")

#: Who every caller is when ``auth.disabled = true``: unconfined, with the ``chat`` and ``admin``
#: scopes, like the master key. Calls record it as their principal, so they stay accountable.
AUTH_DISABLED_PRINCIPAL = Principal(id="auth-disabled", kind="anonymous", scopes=frozenset({"chat", "admin"}))


class Gateway:
    """Holds the started plugins and runs every call through the pipeline."""

    def __init__(self, settings: Settings, plugins: LoadedPlugins, router: Router, policy: RoutingPolicy) -> None:
        self.settings = settings
        self.plugins = plugins
        self.router = router
        self._authenticators = plugins.authenticators
        self._auth_disabled = settings.auth.disabled
        stages: Sequence[object] = [stage for _, stage in plugins.stages]
        attempts = AttemptLoop(router, policy, stages)
        observe = stage_observers(plugins)
        self._json = json_chain(stages, attempts.run, observe)
        self._open = stream_chain(stages, attempts.open, observe)
        self._stream_stages = any(overridden(stage, "stream") for stage in stages)
        self._limits = settings.limits

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
            return AUTH_DISABLED_PRINCIPAL
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
    def authorize(principal: Principal, scope: str) -> None:
        """Outside inference calls (admin routes, listings): require ``scope``."""
        require_scope(principal, scope)

    # --- the pipeline -----------------------------------------------------------------------

    def check_limits(self, call: Call) -> None:
        """``[limits]`` on what every ingress hands in, before any stage runs: the model name (the
        router caches resolved names, so only bounded ones may reach it) and the message count."""
        limits = self._limits
        request = call.request
        if len(request.model) > limits.max_model_chars:
            raise InvalidRequest(f"model: {len(request.model)} characters, more than limits.max_model_chars "
                                 f"({limits.max_model_chars})", param="model", code="model_too_long")
        messages = getattr(request, "messages", None)
        if messages is not None and len(messages) > limits.max_messages:
            raise InvalidRequest(f"messages: {len(messages)} messages, more than limits.max_messages "
                                 f"({limits.max_messages})", param="messages", code="too_many_messages")

    async def complete(self, call: Call, caller_ends: bool = False) -> ChatResponse:
        """The JSON chain, then the call's hooks (see :meth:`Call.when_answered`). Embeddings too:
        :meth:`embed`. ``caller_ends``: a reply is returned with the call's end hooks not yet run
        (settles, a cache store, the metrics' record): the caller runs them
        (:meth:`Call.run_ended`) once the answer went out, so that work is not between the reply
        and its client (the lean ingress: about 15 µs of a call at one connection). A call that
        fails ends here either way. (One coroutine, no helper: each frame here is resumed at every
        await inside.)"""
        call.require_principal()  # a Call refuses to be built without one; this catches a reset
        self.check_limits(call)
        ends_here = True
        try:
            reply = await self._json(call)
        except JunctionError as error:
            call.failed(error)
            call.run_answered(error)
            raise
        else:
            call.answered(reply)
            call.run_answered(None)
            ends_here = not caller_ends
            return reply  # type: ignore[return-value]
        finally:
            if ends_here:
                call.run_ended()
            _name_in_access_line(call)

    async def embed(self, call: Call) -> EmbeddingResponse:
        return await self.complete(call)  # type: ignore[return-value]

    async def open_stream(self, call: Call) -> AsyncIterator[StreamEvent]:
        """Start a stream and return its events. Everything that fails before the first event
        (a stage's refusal, routing, every deployment's attempt) fails here, as a normal HTTP
        error. Closing the returned iterator closes every stage's stream, innermost first."""
        call.require_principal()
        self.check_limits(call)
        first: StreamEvent | None = None
        try:
            events = await self._open(call)
            if self._stream_stages:  # the attempt loop's own stream has its first event in hand
                first = await anext(events)
        except StopAsyncIteration:
            pass
        except BaseException as error:
            if isinstance(error, JunctionError):
                call.failed(error)
                call.run_answered(error)
            await close_streams(call)
            call.run_ended()
            raise
        finally:
            _name_in_access_line(call)
        call.run_answered(None)
        if self._stream_stages:
            return await primed(_relay(call, first, events))
        # The attempt loop's stream, the only layer: as it is, unless the call ends with hooks.
        return await primed(_ending(call, events)) if call.has_end_hooks else events


def _name_in_access_line(call: Call) -> None:
    """The request's access line names the deployment that answered (else the model asked for) and
    the org, whatever plugins are on (set once the answer or the stream's first event is in)."""
    request = current_request()
    if request is not None:
        request.model = call.deployment or getattr(call.received, "model", None)
        request.org_id = call.org_id


def stage_observers(plugins: LoadedPlugins) -> Observe | None:
    """The components that observe stages (none unless e.g. tracing is on), as one ``observe``."""
    observers = [component for component in plugins.components if isinstance(component, StageObserver)]
    if not observers:
        return None
    names = {id(stage): name for name, stage in plugins.stages}

    def observe(stage: object, method: str, run: Callable[..., Any]) -> Callable[..., Any]:
        for observer in observers:
            run = observer.observe_stage(names[id(stage)], method, run)
        return run

    return observe


async def _relay(call: Call, first: StreamEvent | None, events: AsyncIterator[StreamEvent]) -> AsyncIterator[StreamEvent]:
    try:
        yield None  # taken by primed
        if first is not None:
            yield first
            async for event in events:
                yield event
    except JunctionError as error:
        call.failed(error)
        raise
    finally:
        await close_streams(call)
        call.run_ended()


async def _ending(call: Call, events: AsyncIterator[StreamEvent]) -> AsyncIterator[StreamEvent]:
    try:
        yield None  # taken by primed
        async for event in events:
            yield event
    finally:
        await close_streams(call)
        call.run_ended()


async def close_streams(call: Call) -> None:
    """Close the call's streams innermost first (each ``finally`` after the layers inside it).
    Closing a finished stream does nothing."""
    streams = call.open_streams or []
    while streams:
        stream = streams.pop()
        try:
            await stream.aclose()  # type: ignore[attr-defined]
        except Exception:  # one stage's failing cleanup must not skip the others'
            log.exception("closing a stage's stream of call %s failed", call.request_id)
