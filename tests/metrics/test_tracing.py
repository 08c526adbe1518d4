"""The ``tracing`` plugin through a real ``junction serve``: spans reach a loopback OTLP/HTTP
receiver, the call's span continues the client's ``traceparent``, each stage of the pipeline is
a child span nested as the stages are, each upstream attempt is a child of the innermost stage's
span, and the upstream receives that attempt's context as its ``traceparent``."""

from __future__ import annotations

import httpx
import pytest
from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from junction.testing.server import JunctionProcess
from junction.testing.upstream import FakeUpstream
from tests.conftest import openai_provider_table

pytestmark = pytest.mark.slow
CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_PARENT = "00f067aa0ba902b7"


class OtlpReceiver(FakeUpstream):
    """Accepts OTLP/HTTP protobuf exports and keeps the spans."""

    def __init__(self) -> None:
        super().__init__()
        self.spans: list = []

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/v1/traces", self.export)]

    async def export(self, request: web.Request) -> web.Response:
        message = ExportTraceServiceRequest()
        message.ParseFromString(await request.read())
        for resource in message.resource_spans:
            for scope in resource.scope_spans:
                self.spans.extend(scope.spans)
        return web.Response(body=b"", content_type="application/x-protobuf")


def _attributes(span) -> dict:
    values = {}
    for item in span.attributes:
        value = item.value
        values[item.key] = value.string_value or value.int_value or value.bool_value
    return values


def test_spans_continue_the_client_trace_and_reach_the_upstream(fake_openai_server, tmp_path):
    fake_openai_server.reset()
    receiver = OtlpReceiver().start()
    try:
        config = openai_provider_table(fake_openai_server) + f"""
[middleware.tracing]
enabled = true
endpoint = "{receiver.url}/v1/traces"
export_delay_ms = 100
"""
        with JunctionProcess(tmp_path, config) as server:
            headers = {"authorization": f"Bearer {server.key}",
                       "traceparent": f"00-{CLIENT_TRACE}-{CLIENT_PARENT}-01"}
            fake_openai_server.fail_next(503, {"error": {"message": "busy", "type": "server_error"}})
            answer = httpx.post(f"{server.url}/v1/chat/completions", headers=headers, timeout=20,
                                json={"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "hi"}]})
            assert answer.status_code == 503  # one deployment, and it was overloaded
            answer = httpx.post(f"{server.url}/v1/chat/completions", headers=headers, timeout=20,
                                json={"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "hi"}]})
            assert answer.status_code == 200
        # Stopped: the last batch was flushed at shutdown.
        spans = receiver.spans
        calls = [span for span in spans if span.kind == span.SPAN_KIND_SERVER]
        attempts = [span for span in spans if span.kind == span.SPAN_KIND_CLIENT]
        stages = [span for span in spans if span.kind == span.SPAN_KIND_INTERNAL]
        assert len(calls) == 2 and len(attempts) == 2, server.output()
        for call in calls:
            assert call.trace_id.hex() == CLIENT_TRACE and call.parent_span_id.hex() == CLIENT_PARENT
            assert call.name == "chat openai/gpt-4o"
        by_id = {span.span_id: span for span in spans}
        # Every other stage of the default pipeline, once per call, inside its call's span: the
        # enter-only stages (metrics, authorize, bridges: one after the other), and agents (an enter
        # span, and a handle span around the attempt loop).
        assert sorted(span.name for span in stages) == sorted(
            ["stage metrics", "stage authorize", "stage bridges", "stage agents", "stage agents"] * 2)
        for stage in stages:
            assert _attributes(stage)["junction.stage"] == stage.name.removeprefix("stage ")
        for call in calls:
            inner = [span for span in stages if span.parent_span_id == call.span_id]
            assert sorted(span.name for span in inner) == ["stage agents", "stage agents", "stage authorize",
                                                            "stage bridges", "stage metrics"]
            assert all(call.start_time_unix_nano <= span.start_time_unix_nano <= span.end_time_unix_nano
                       <= call.end_time_unix_nano for span in inner)
            entered = sorted((span for span in inner if span.name != "stage agents"),
                             key=lambda span: span.start_time_unix_nano)
            assert [span.name for span in entered] == ["stage metrics", "stage authorize", "stage bridges"]
        for attempt in attempts:
            parent = by_id[attempt.parent_span_id]  # the innermost open stage span: agents' handle
            assert parent.name == "stage agents" and by_id[parent.parent_span_id] in calls
            assert attempt.trace_id.hex() == CLIENT_TRACE
            assert _attributes(attempt)["gen_ai.provider.name"] == "openai"
            assert _attributes(attempt)["gen_ai.request.model"] == "gpt-4o"
        ok = next(call for call in calls if _attributes(call)["http.response.status_code"] == 200)
        assert _attributes(ok)["gen_ai.usage.input_tokens"] == 11 and _attributes(ok)["gen_ai.usage.output_tokens"] == 7
        failed = next(call for call in calls if call is not ok)
        assert _attributes(failed)["http.response.status_code"] == 503 and "error.type" in _attributes(failed)
        # The stage the failure passed through says so (agents' handle, around the attempt loop);
        # those that had finished before (the enters) do not.
        failed_stages = [span for span in stages if span.parent_span_id == failed.span_id]
        error = failed_stages[0].status.STATUS_CODE_ERROR
        assert sorted(span.name for span in failed_stages if span.status.code == error) == ["stage agents"]
        assert {span.name for span in failed_stages if span.status.code != error} == {
            "stage metrics", "stage authorize", "stage bridges", "stage agents"}
        # Each upstream request carried its attempt span as the parent.
        sent = [request.headers.get("traceparent") for request in fake_openai_server.requests
                if request.path == "/v1/chat/completions"]
        assert sorted(sent) == sorted(f"00-{CLIENT_TRACE}-{attempt.span_id.hex()}-01" for attempt in attempts)
    finally:
        receiver.stop()


def test_a_stream_has_its_stage_spans_and_none_when_stage_spans_are_off(fake_openai_server, tmp_path):
    receiver = OtlpReceiver().start()
    body = {"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    try:
        for stage_spans in ("true", "false"):
            receiver.spans.clear()
            config = openai_provider_table(fake_openai_server) + f"""
[middleware.tracing]
enabled = true
endpoint = "{receiver.url}/v1/traces"
export_delay_ms = 100
stage_spans = {stage_spans}
"""
            with JunctionProcess(tmp_path, config) as server:
                with httpx.stream("POST", f"{server.url}/v1/chat/completions", json=body, timeout=20,
                                  headers={"authorization": f"Bearer {server.key}"}) as answer:
                    assert answer.status_code == 200
                    text = "".join(answer.iter_text())
                assert "[DONE]" in text
            spans = receiver.spans
            by_id = {span.span_id: span for span in spans}
            (call,) = [span for span in spans if span.kind == span.SPAN_KIND_SERVER]
            (attempt,) = [span for span in spans if span.kind == span.SPAN_KIND_CLIENT]
            stages = [span for span in spans if span.kind == span.SPAN_KIND_INTERNAL]
            if stage_spans == "false":
                assert stages == [] and attempt.parent_span_id == call.span_id, server.output()
                continue
            assert sorted(span.name for span in stages) == [
                "stage agents", "stage agents", "stage authorize", "stage bridges", "stage metrics"]
            # The agents stage's stream span lasts until the stream ended, inside the call's.
            agents = by_id[attempt.parent_span_id]
            assert agents.name == "stage agents" and agents.parent_span_id == call.span_id
            assert all(span.parent_span_id == call.span_id for span in stages)
            assert call.start_time_unix_nano <= agents.start_time_unix_nano <= attempt.start_time_unix_nano
            assert attempt.end_time_unix_nano <= agents.end_time_unix_nano <= call.end_time_unix_nano
    finally:
        receiver.stop()
