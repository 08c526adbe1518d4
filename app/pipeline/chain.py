"""Composes the ordered stages into the onion, once, at start-up.

Three chains come out: JSON answers (``enter`` and ``handle``), streams (``enter`` and
``stream``) and attempts (``attempt``). A stage only joins the chains whose methods it defines,
so an ``enter``-only stage costs one await per call and nothing per streamed event.

Streams: each layer is opened by a coroutine (``Opener``) that runs the ``enter`` parts and
returns the layer's iterator. Every iterator is recorded (``call.opened``) as it is made,
so the gateway can close them innermost first when the client goes away: each stage's
``finally`` then runs exactly once, after the layers inside it.

Observers: a chain may be composed with an ``observe`` function (see
:class:`~junction.plugins.stages.StageObserver`), handed each stage's ``enter`` / ``handle`` /
``stream`` method once, here, and returning what the chain calls instead (e.g. the tracing
plugin's span per stage). Without one the chain holds the stages' own methods: nothing per call.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

from junction.errors import JunctionError
from junction.plugins.call import Call
from junction.plugins.protocols import Deployment
from junction.plugins.stages import AttemptAnswer, Next, NextAttempt, NextStream, Reply, overridden
from junction.schemas.stream import StreamEvent

Opener = Callable[[Call], Awaitable[AsyncIterator[StreamEvent]]]
#: ``observe(stage, method name, bound method)`` → the callable the chain uses for it.
Observe = Callable[[object, str, Callable[..., Any]], Callable[..., Any]]


def json_chain(stages: Sequence[object], innermost: Next, observe: Observe | None = None) -> Next:
    return _compose(stages, innermost, "handle", _handle_link, observe)


def stream_chain(stages: Sequence[object], innermost: Opener, observe: Observe | None = None) -> Opener:
    return _compose(stages, innermost, "stream", _stream_link, observe)


def _method(stage: object, name: str, observe: Observe | None) -> Callable[..., Any]:
    bound = getattr(stage, name)
    return bound if observe is None else observe(stage, name, bound)


def _compose(stages: Sequence[object], innermost: Any, around: str, link: Callable[[Any, Any], Any],
             observe: Observe | None) -> Any:
    """Wrap ``innermost`` in each stage's ``around`` method (when it defines one), itself inside
    its ``enter`` (when it defines one): the outermost stage comes first. Consecutive ``enter``
    methods share one link: they run one after the other, with no frame between them."""
    chain = innermost
    enters: list[Callable[[Call], Awaitable[None]]] = []  # outermost first
    for stage in reversed(stages):
        if overridden(stage, around):
            if enters:
                chain, enters = _enter_link(enters, chain), []
            chain = link(_method(stage, around, observe), chain)
        if overridden(stage, "enter"):
            enters.insert(0, _method(stage, "enter", observe))
    return _enter_link(enters, chain) if enters else chain


def attempt_chain(stages: Sequence[object], innermost: NextAttempt) -> NextAttempt:
    chain = innermost
    for stage in reversed(stages):
        if overridden(stage, "attempt"):
            chain = _attempt_link(stage, chain)
    return chain


def _enter_link(enters: Sequence[Callable[[Call], Awaitable[None]]],
                inner: Callable[[Call], Awaitable]) -> Callable[[Call], Awaitable]:  # type: ignore[type-arg]
    enters = tuple(enters)

    async def entered(call: Call):  # type: ignore[no-untyped-def]
        try:
            for enter in enters:
                await enter(call)
        except JunctionError as error:
            call.failed(error)
            raise
        return await inner(call)

    return entered


def _handle_link(handle: Callable[[Call, Next], Awaitable[Reply]], inner: Next) -> Next:
    async def handled(call: Call):  # type: ignore[no-untyped-def]
        try:
            reply = await handle(call, inner)
        except JunctionError as error:
            call.failed(error)
            raise
        call.answered(reply)
        return reply

    return handled


def _stream_link(stream: Callable[[Call, NextStream], AsyncIterator[StreamEvent]], inner: Opener) -> Opener:
    def next_layer(call: Call) -> AsyncIterator[StreamEvent]:
        return call.opened(_inner_layer(call, inner))

    async def opened(call: Call) -> AsyncIterator[StreamEvent]:
        return call.opened(stream(call, next_layer))

    return opened


async def _inner_layer(call: Call, open_inner: Opener) -> AsyncIterator[StreamEvent]:
    """What a wrapping stage iterates: the inner layers, opened on its first ``anext``. Failures
    of the inner layers are recorded here, before they reach the stage."""
    try:
        events = await open_inner(call)
        async for event in events:
            yield event
    except JunctionError as error:
        call.failed(error)
        raise
    if call.outcome is None:
        call.succeeded(None)


def _attempt_link(stage: object, inner: NextAttempt) -> NextAttempt:
    attempt = stage.attempt  # type: ignore[attr-defined]

    async def attempted(call: Call, deployment: Deployment) -> AttemptAnswer:
        return await attempt(call, deployment, inner)

    return attempted
