"""The contracts of the request pipeline: stages, and the routing policy of the attempt loop.

A call runs through the stages like an onion, outermost first, in the order
:class:`~junction.plugins.protocols.StagePlacement` and ``[pipeline] order`` resolve; the innermost
layer is the attempt loop, which tries deployments in the order the :class:`RoutingPolicy` gives
and tells it how each attempt went. A stage defines any of four methods (subclass :class:`Stage`
to inherit pass-throughs for the others; a method left as inherited costs nothing per call):

* ``enter(call)`` runs before the inner layers, for JSON answers and streams alike: refuse by
  raising a :class:`~junction.errors.JunctionError`, or rewrite ``call.request``. The cheapest kind.
* ``handle(call, next)`` wraps a JSON answer (chat or embeddings): ``reply = await next(call)``
  inside ``try``/``finally`` runs the ``finally`` exactly once, however the call ends.
* ``stream(call, next)`` wraps a stream: an async generator that iterates ``next(call)`` and
  yields the events it wants the client to see (count them, transform them, replay its own, end
  early). Its ``finally`` runs exactly once: at the end, on an error, or when the client
  disconnects. Anything raised before the first event reaches the client as an HTTP error.
* ``attempt(call, deployment, next)`` wraps one upstream attempt, up to its answer (JSON) or its
  first event (a stream): swap the deployment's target (org credentials), refuse a deployment
  (a retryable error lets the routing policy move on), time it.

``call.outcome`` is set before any stage's ``finally`` runs.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import msgspec

from junction.errors import PermissionDenied
from junction.plugins.call import Attempt, Call
from junction.plugins.protocols import Deployment, Principal
from junction.schemas.chat import ChatResponse
from junction.schemas.embeddings import EmbeddingResponse
from junction.schemas.stream import StreamEvent

#: A JSON answer: a chat completion or an embeddings response.
Reply = ChatResponse | EmbeddingResponse


@dataclass(slots=True)
class OpenedStream:
    """A stream whose first event arrived: the attempt that opened it succeeded."""

    first: StreamEvent
    rest: AsyncIterator[StreamEvent]


AttemptAnswer = ChatResponse | EmbeddingResponse | OpenedStream
Next = Callable[[Call], Awaitable[Reply]]
NextStream = Callable[[Call], AsyncIterator[StreamEvent]]
NextAttempt = Callable[[Call, Deployment], Awaitable[AttemptAnswer]]

STAGE_METHODS = ("enter", "handle", "stream", "attempt")


class Stage(Protocol):
    """A layer of the pipeline (see the module docstring). Subclass it and override what you need."""

    async def enter(self, call: Call) -> None:
        """Before the inner layers: raise to refuse, or rewrite ``call.request``."""

    async def handle(self, call: Call, next: Next) -> Reply:
        """Around a JSON answer; ``next(call)`` runs the inner layers."""
        return await next(call)

    async def stream(self, call: Call, next: NextStream) -> AsyncIterator[StreamEvent]:
        """Around a stream; iterate ``next(call)`` and yield what the client should see."""
        async for event in next(call):
            yield event

    async def attempt(self, call: Call, deployment: Deployment, next: NextAttempt) -> AttemptAnswer:
        """Around one upstream attempt; ``next(call, deployment)`` makes it."""
        return await next(call, deployment)


def overridden(stage: object, method: str) -> bool:
    """Whether ``stage`` defines ``method`` itself rather than inheriting :class:`Stage`'s."""
    own = getattr(type(stage), method, None)
    return own is not None and own is not getattr(Stage, method)


@runtime_checkable
class StageObserver(Protocol):
    """A component that sees every stage's work as its own span of time (the tracing plugin: a
    span per stage). Asked once per stage method as the chains are composed at start-up."""

    def observe_stage(self, name: str, method: str, run: Callable[..., Any]) -> Callable[..., Any]:
        """``run`` is the stage ``name``'s bound ``method`` (``enter``, ``handle`` or ``stream``);
        return it unchanged to leave it alone, or a callable of the same signature around it."""
        ...


def is_stage(candidate: object) -> bool:
    return any(overridden(candidate, method) for method in STAGE_METHODS)


class Retry(msgspec.Struct, frozen=True):
    """A routing policy's answer to a failed attempt: go on with the next deployment of the
    order, after ``delay`` seconds, passing over the ``skip`` deployments that come first (e.g.
    straight to a model with a larger context window)."""

    delay: float = 0.0
    skip: int = 0


@runtime_checkable
class RoutingPolicy(Protocol):
    """Orders the deployments of each call and hears how every attempt went."""

    async def order(self, call: Call, candidates: Sequence[Deployment]) -> Sequence[Deployment]:
        """The deployments to try, first choice first. ``candidates`` are the routed model's
        deployments (``weight``, ``fallback`` set), then the bridge's fallback model's. The policy
        may reorder, drop or repeat them; an empty order fails the call with a 503."""
        ...

    async def attempted(self, call: Call, attempt: Attempt) -> Retry | None:
        """Told the result of every attempt, in order, as soon as it is known (``attempt.ok``,
        ``error_class``, ``ttfb_ms``, ``latency_ms``, ``retry_after``). After a failure, return
        :class:`Retry` to go on with the next deployment of the order, or ``None`` to end the call
        with this attempt's error. The answer after a success is ignored."""
        ...


def require_model(principal: Principal, model: str) -> None:
    """Refuse (403) a model outside the caller's allow-list. A stage that changes
    ``call.request.model`` checks the new model with this."""
    if principal.models is not None and model not in principal.models:
        raise PermissionDenied(f"this key may not use model {model!r}", param="model", code="model_not_allowed")


def require_scope(principal: Principal, scope: str) -> None:
    if scope not in principal.scopes:
        raise PermissionDenied(f"this key lacks the {scope!r} scope", code="insufficient_scope")
