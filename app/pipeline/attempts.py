"""The innermost layer: resolve the call's model into deployments, let the routing policy order
them, and try them one by one through the stages' ``attempt`` chain until one answers.

Every attempt is recorded on the call (``call.attempts``) and reported to the policy, which
decides after each failure whether the next deployment is tried (and after how long).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Sequence
from typing import Any

from junction.errors import InvalidRequest, JunctionError, UpstreamError, UpstreamUnavailable
from junction.pipeline.chain import attempt_chain
from junction.plugins.call import Call
from junction.plugins.protocols import Deployment, EmbeddingsAdapter
from junction.plugins.stages import AttemptAnswer, OpenedStream, RoutingPolicy, require_model
from junction.routing.router import Router
from junction.schemas.embeddings import EmbeddingRequest
from junction.schemas.stream import StreamEvent, UsageReport


class AttemptLoop:
    def __init__(self, router: Router, policy: RoutingPolicy, stages: Sequence[object]) -> None:
        self._router = router
        self._policy = policy
        self._attempt = attempt_chain(stages, self._upstream)

    def candidates(self, call: Call) -> tuple[Deployment, ...]:
        """The routed model's deployments, then the bridge's fallback model's (for a caller
        allowed that model too). The caller's allow-list is checked here once more, so no stage
        order can send a call upstream to a model the caller may not use."""
        request, principal = call.request, call.principal
        require_model(principal, request.model)
        deployments = self._router.resolve(request.model)
        fallback = call.fallback_model
        if fallback and (principal.models is None or fallback in principal.models):
            deployments += tuple(dataclasses.replace(d, fallback=True) for d in self._router.resolve(fallback))
        if isinstance(request, EmbeddingRequest):
            deployments = tuple(d for d in deployments if isinstance(d.provider, EmbeddingsAdapter))
            if not deployments:
                raise InvalidRequest(f"model {request.model!r}: its provider offers no embeddings",
                                     param="model", code="embeddings_not_supported")
        return deployments

    async def open(self, call: Call) -> AsyncIterator[StreamEvent]:
        """The stream of the first deployment that opens one (its first event arrived)."""
        opened = await self.run(call)
        # Primed: closing it unread (a client gone before the headers went) still records the
        # call as abandoned and closes the upstream's stream.
        return call.opened(await primed(_relayed(call, opened)))  # type: ignore[arg-type]

    async def run(self, call: Call) -> AttemptAnswer:
        """Try the deployments in the policy's order until one answers: a JSON reply, or an
        opened stream (:meth:`open` relays it)."""
        try:
            await call.flush_store()  # what admission stages queued and nobody awaited yet
            order = await self._policy.order(call, self.candidates(call))
            if not order:
                raise UpstreamUnavailable(f"no deployment of model {call.request.model!r} is available now",
                                          code="no_deployment_available", headers={"Retry-After": "1"})
            index = 0
            while True:
                deployment = order[index]
                attempt = call.begin_attempt(deployment)
                try:
                    answer = await self._attempt(call, deployment)
                except JunctionError as error:
                    call.attempt_failed(attempt, error)
                    retry = await self._policy.attempted(call, attempt)
                    index += 1 + (retry.skip if retry is not None else 0)
                    if retry is None or index >= len(order):
                        raise
                    if retry.delay > 0:
                        await asyncio.sleep(retry.delay)
                    continue
                stream = isinstance(answer, OpenedStream)
                call.attempt_answered(attempt, deployment, stream=stream)
                await self._policy.attempted(call, attempt)
                if not stream:
                    call.answered(answer)  # type: ignore[arg-type]
                return answer
        except JunctionError as error:
            call.failed(error)
            raise

    @staticmethod
    async def _upstream(call: Call, deployment: Deployment) -> AttemptAnswer:
        request = call.request
        if isinstance(request, EmbeddingRequest):
            return await deployment.provider.embed(request, deployment.target)  # type: ignore[attr-defined]
        if not request.stream:
            return await deployment.provider.complete(request, deployment.target)
        events = aiter(deployment.provider.stream(request, deployment.target))
        try:
            first = await anext(events)
        except StopAsyncIteration:
            raise UpstreamError(f"{deployment.provider_name} ended the stream before its first event",
                                code="upstream_empty_stream") from None
        except BaseException:
            await events.aclose()  # type: ignore[attr-defined]
            raise
        return OpenedStream(first, events)


async def primed(stream: AsyncIterator[Any]) -> AsyncIterator[StreamEvent]:
    """``stream`` run to its first ``yield`` (a ``None`` it yields for this), inside its ``try``:
    from then on closing it, or the loop collecting it unfinished, runs its ``finally`` even when
    whoever took it never iterated it."""
    await anext(stream)
    return stream


async def _relayed(call: Call, opened: OpenedStream) -> AsyncIterator[StreamEvent]:
    """The upstream's events; the call's outcome (with the usage reported) once they end."""
    attempt = call.attempts[-1]
    usage = None
    try:
        yield None  # taken by primed
        event = opened.first
        if isinstance(event, UsageReport):
            usage = event.usage
        yield event
        async for event in opened.rest:
            if isinstance(event, UsageReport):
                usage = event.usage
            yield event
    except JunctionError as error:  # cut off mid-stream: the client gets an error event
        call.failed(error, usage)
        raise
    else:
        call.succeeded(usage)
    finally:
        attempt.latency_ms = call.elapsed_ms() - attempt.started_ms
        if call.outcome is None:
            call.abandoned(usage)
        await opened.rest.aclose()  # type: ignore[attr-defined]
