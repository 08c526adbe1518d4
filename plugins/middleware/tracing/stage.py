"""The ``tracing`` stage: an OpenTelemetry span per call (``SERVER``; the parent is the client's
W3C ``traceparent`` when it sent one), a child span per stage (``INTERNAL``, ``stage <name>``,
nested as the stages are: the stage observer seam of the chain hands this plugin every other
stage's methods at start-up) and a child span per upstream attempt (``CLIENT``) under the
innermost stage's, whose context goes upstream as ``traceparent``. Attributes follow the GenAI semantic conventions
(``gen_ai.operation.name``, ``gen_ai.provider.name``, ``gen_ai.request.model``,
``gen_ai.usage.input_tokens``, ``gen_ai.usage.output_tokens``, ``error.type``).

Spans are exported over OTLP/HTTP in batches by a background thread; the provider is the
plugin's own (never the process-global one), and is flushed and shut down at close."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from junction.errors import ConfigError, JunctionError
from junction.middleware.tracing.config import TracingConfig
from junction.plugins import (
    AttemptAnswer,
    Call,
    Deployment,
    Next,
    NextAttempt,
    NextStream,
    PluginContext,
    Reply,
    Stage,
)
from junction.schemas.stream import StreamEvent
from junction.upstream.http import upstream_headers

_OPERATIONS = {"chat.completions": "chat", "messages": "chat", "bridges.chat": "chat", "embeddings": "embeddings"}


class CallSpan:
    """The call's span, kept in ``call.state``, and the innermost span open now (the call's or
    a stage's): the parent of the next stage's or attempt's span."""

    __slots__ = ("current", "span")

    def __init__(self, span: Span) -> None:
        self.span = span
        self.current = span


def _failed(span: Span, error: JunctionError) -> None:
    span.set_attribute("error.type", error.code or error.error_type)
    span.set_attribute("http.response.status_code", error.status)
    span.set_status(Status(StatusCode.ERROR, error.message[:200]))


class TracingStage(Stage):
    def __init__(self, config: TracingConfig, context: PluginContext) -> None:
        if not 0.0 <= config.sample_ratio <= 1.0:
            raise ConfigError("middleware.tracing.sample_ratio: must be between 0 and 1")
        # A typo here would only show as export failures in the log, every few seconds, for ever.
        endpoint = urlsplit(config.endpoint)
        if endpoint.scheme not in ("http", "https") or not endpoint.hostname:
            raise ConfigError(f"middleware.tracing.endpoint: {config.endpoint!r} is not an http(s) URL of an "
                              "OTLP/HTTP traces endpoint (e.g. http://127.0.0.1:4318/v1/traces)")
        self._provider = TracerProvider(resource=Resource.create({"service.name": config.service_name}),
                                        sampler=ParentBased(TraceIdRatioBased(config.sample_ratio)))
        exporter = OTLPSpanExporter(endpoint=config.endpoint, headers=dict(config.headers),
                                    timeout=config.export_timeout_seconds)
        self._provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=config.export_delay_ms))
        self._tracer = self._provider.get_tracer("junction")
        self._propagator = TraceContextTextMapPropagator()
        self._stage_spans = config.stage_spans

    # --- a span per stage (StageObserver) -----------------------------------------------------

    def observe_stage(self, name: str, method: str, run: Callable[..., Any]) -> Callable[..., Any]:
        if not self._stage_spans or name == "tracing":
            return run
        if method == "stream":
            return self._observed_stream(name, run)
        return self._observed(name, method, run)

    def _stage_span(self, holder: CallSpan, name: str, method: str) -> Span:
        return self._tracer.start_span(f"stage {name}", context=trace.set_span_in_context(holder.current),
                                       kind=SpanKind.INTERNAL,
                                       attributes={"junction.stage": name, "junction.stage.method": method})

    def _observed(self, name: str, method: str, run: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        """``enter(call)`` or ``handle(call, next)`` inside a span (not traced: as it was)."""

        async def observed(call: Call, *rest: Any) -> Any:
            holder = call.state.get(CallSpan)
            if holder is None or not holder.span.is_recording():
                return await run(call, *rest)
            span = self._stage_span(holder, name, method)
            outer, holder.current = holder.current, span
            try:
                return await run(call, *rest)
            except JunctionError as error:
                _failed(span, error)
                raise
            finally:
                holder.current = outer
                span.end()

        return observed

    def _observed_stream(self, name: str, run: Callable[..., AsyncIterator[StreamEvent]]) -> Callable[..., AsyncIterator[StreamEvent]]:
        """``stream(call, next)`` inside a span, from its opening to its end; the stage's own
        stream is closed here, so its ``finally`` still runs before the outer layers'."""

        async def observed(call: Call, next: NextStream) -> AsyncIterator[StreamEvent]:
            holder = call.state.get(CallSpan)
            events = run(call, next)
            if holder is None or not holder.span.is_recording():
                try:
                    async for event in events:
                        yield event
                finally:
                    await events.aclose()
                return
            span = self._stage_span(holder, name, "stream")
            outer, holder.current = holder.current, span
            try:
                async for event in events:
                    yield event
            except JunctionError as error:
                _failed(span, error)
                raise
            finally:
                await events.aclose()
                holder.current = outer
                span.end()

        return observed

    # --- the call's span and the attempts' --------------------------------------------------

    async def close(self) -> None:
        await asyncio.to_thread(self._provider.shutdown)  # flushes the last batch

    def _start(self, call: Call) -> Span:
        parent = self._propagator.extract(call.headers)
        operation = _OPERATIONS.get(call.endpoint, call.endpoint)
        model = getattr(call.received, "model", None) or ""
        span = self._tracer.start_span(f"{operation} {model}".strip(), context=parent, kind=SpanKind.SERVER,
                                       attributes={"gen_ai.operation.name": operation, "gen_ai.request.model": model,
                                                   "junction.request_id": call.request_id,
                                                   "junction.endpoint": call.endpoint})
        call.state[CallSpan] = CallSpan(span)
        return span

    def _end(self, call: Call, span: Span) -> None:
        outcome = call.outcome
        if call.deployment is not None:
            provider, _, model = call.deployment.partition("/")
            span.set_attribute("gen_ai.provider.name", provider)
            span.set_attribute("gen_ai.response.model", model)
        span.set_attribute("junction.attempts", len(call.attempts))
        span.set_attribute("junction.cache_hit", call.cache_hit)
        if call.org_id is not None:
            span.set_attribute("junction.org_id", call.org_id)
        if outcome is not None:
            span.set_attribute("http.response.status_code", outcome.status)
            if outcome.usage is not None:
                span.set_attribute("gen_ai.usage.input_tokens", outcome.usage.prompt_tokens)
                span.set_attribute("gen_ai.usage.output_tokens", outcome.usage.completion_tokens)
            if outcome.status >= 400:
                span.set_attribute("error.type", outcome.error_code or outcome.error_class or str(outcome.status))
                span.set_status(Status(StatusCode.ERROR))
        span.end()

    async def handle(self, call: Call, next: Next) -> Reply:
        span = self._start(call)
        try:
            return await next(call)
        finally:
            self._end(call, span)

    async def stream(self, call: Call, next: NextStream) -> AsyncIterator[StreamEvent]:
        span = self._start(call)
        try:
            async for event in next(call):
                yield event
        finally:
            self._end(call, span)

    async def attempt(self, call: Call, deployment: Deployment, next: NextAttempt) -> AttemptAnswer:
        parent = call.state.get(CallSpan)
        context = trace.set_span_in_context(parent.current) if parent is not None else None
        operation = _OPERATIONS.get(call.endpoint, call.endpoint)
        span = self._tracer.start_span(
            f"{operation} {deployment.target.model}", context=context, kind=SpanKind.CLIENT,
            attributes={"gen_ai.operation.name": operation, "gen_ai.provider.name": deployment.provider_name,
                        "gen_ai.request.model": deployment.target.model, "junction.fallback": deployment.fallback})
        carrier: dict[str, Any] = {}
        self._propagator.inject(carrier, context=trace.set_span_in_context(span))
        token = upstream_headers.set(carrier)
        try:
            return await next(call, deployment)
        except JunctionError as error:
            _failed(span, error)
            raise
        finally:
            upstream_headers.reset(token)
            span.end()
