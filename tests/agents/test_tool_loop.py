"""The tool loop through a real server: server-side HTTP tools called by the model of OpenAI,
Anthropic and Gemini (their fakes on loopback), JSON and streamed, against a real tool server."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest

from junction.testing.server import JunctionProcess
from tests.agents.conftest import TOOL_SECRET, Upstream, agent_bridge, register_tool
from tests.agents.tool_server import ToolBehaviour, ToolServer
from tests.tenancy.conftest import Tenant

pytestmark = pytest.mark.slow


def chat(tenant: Tenant, bridge: str, text: str, **fields: Any) -> httpx.Response:
    return tenant.chat_key.request("POST", f"/api/v1/bridges/{bridge}/chat", {"user": text, **fields})


def sse_lines(response: httpx.Response) -> list[str]:
    return [line for line in response.text.split("\n") if line]


def test_parallel_tool_calls_then_the_answer(tenant: Tenant, tool_server: ToolServer, upstream: Upstream) -> None:
    tool = register_tool(tenant, tool_server, "weather")
    agent_bridge(tenant, upstream.model, [tool["id"]])
    tool_server.behaviours["weather"] = ToolBehaviour(body={"sky": "sunny"}, delay=0.8)
    upstream.queue(calls=[("weather", {"city": "Paris"}), ("weather", {"city": "Rome"})], prompt_tokens=10)
    upstream.queue(text="Sunny in both.", prompt_tokens=30)

    started = time.monotonic()
    reply = chat(tenant, "agent", "Weather in Paris and Rome?")
    elapsed = time.monotonic() - started
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["message"]["content"] == "Sunny in both." and not body["message"]["tool_calls"]
    assert body["usage"]["prompt_tokens"] == 40  # both rounds counted
    calls = tool_server.calls("weather")
    assert sorted(call["city"] for call in calls) == ["Paris", "Rome"]
    assert elapsed < 1.55, f"the two 0.8 s tool calls ran one after the other ({elapsed:.2f} s)"
    headers = [r.headers for r in tool_server.requests]
    assert all(h["authorization"] == TOOL_SECRET and h["x-env-secret"] == "env-secret" for h in headers)
    seen = upstream.seen()
    assert "weather" in seen.tool_names
    assert len(seen.tool_results) == 2 and all("sunny" in result for result in seen.tool_results)

    thread = tenant.admin.ok("GET", f"/api/v1/threads/{body['thread_id']}")
    roles = [m["role"] for m in thread["messages"]]
    assert roles == ["user", "assistant", "tool", "tool", "assistant"]
    assistant_calls = thread["messages"][1]["tool_calls"]
    assert [c["function"]["name"] for c in assistant_calls] == ["weather", "weather"]
    notes = thread["messages"][2]["provider_metadata"]["junction"]
    assert notes["error"] is None and notes["latency_ms"] >= 700

    # The next turn replays the tool round from the thread: calls with their results.
    upstream.queue(text="You're welcome.")
    assert chat(tenant, "agent", "Thanks", thread_id=body["thread_id"]).status_code == 200
    assert len(upstream.seen().tool_results) == 2


def test_failures_and_timeouts_reach_the_model_as_tool_errors(tenant: Tenant, tool_server: ToolServer,
                                                              upstream: Upstream) -> None:
    broken = register_tool(tenant, tool_server, "broken")
    slow = register_tool(tenant, tool_server, "slow", timeout_seconds=0.3)
    agent_bridge(tenant, upstream.model, [broken["id"], slow["id"]])
    tool_server.behaviours["broken"] = ToolBehaviour(status=500, body={"detail": "database down"})
    tool_server.behaviours["slow"] = ToolBehaviour(delay=2.0)
    upstream.queue(calls=[("broken", {"city": "Oslo"}), ("slow", {"city": "Oslo"})])
    upstream.queue(text="Sorry, the tools failed.")

    reply = chat(tenant, "agent", "Oslo?")
    assert reply.status_code == 200, reply.text
    assert reply.json()["message"]["content"] == "Sorry, the tools failed."
    results = " ".join(upstream.seen().tool_results)
    assert "HTTP 500" in results and "database down" in results
    assert "timed out after 0.3s" in results


def test_round_limit_ends_with_a_clear_finish_reason(tenant: Tenant, tool_server: ToolServer,
                                                     fake_openai: Any) -> None:
    tool = register_tool(tenant, tool_server, "weather")
    agent_bridge(tenant, "openai/gpt-4o-mini", [tool["id"]], max_tool_rounds=1)
    upstream = Upstream("openai", fake_openai, "openai/gpt-4o-mini")
    upstream.queue(text="Checking.", calls=[("weather", {"city": "Paris"})])
    upstream.queue(text="Checking again.", calls=[("weather", {"city": "Paris"})])
    response = tenant.chat_key.request("POST", "/v1/chat/completions", {
        "model": "bridge/agent", "messages": [{"role": "user", "content": "Paris?"}]})
    assert response.status_code == 200, response.text
    choice = response.json()["choices"][0]
    assert choice["finish_reason"] == "length"
    assert response.headers["x-junction-finish-reason"] == "max_tool_rounds"
    assert choice["message"]["content"] == "Checking again." and not choice["message"].get("tool_calls")
    assert len(tool_server.calls("weather")) == 1

    upstream.queue(text="Checking.", calls=[("weather", {"city": "Paris"})])
    upstream.queue(text="Again.", calls=[("weather", {"city": "Paris"})])
    streamed = tenant.chat_key.request("POST", "/v1/chat/completions", {
        "model": "bridge/agent", "messages": [{"role": "user", "content": "Paris?"}], "stream": True})
    lines = sse_lines(streamed)
    activity = [json.loads(line.removeprefix(": junction-tool ")) for line in lines
                if line.startswith(": junction-tool ")]
    assert [(a["status"], a.get("error")) for a in activity][-1] == ("skipped", "max_tool_rounds")
    chunks = [json.loads(line[6:]) for line in lines if line.startswith("data: {")]
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"][0]["finish_reason"]] == ["length"]
    assert len(tool_server.calls("weather")) == 2


def test_client_tools_come_back_to_the_client_in_a_mixed_turn(tenant: Tenant, tool_server: ToolServer,
                                                              fake_openai: Any) -> None:
    tool = register_tool(tenant, tool_server, "weather")
    agent_bridge(tenant, "openai/gpt-4o-mini", [tool["id"]])
    upstream = Upstream("openai", fake_openai, "openai/gpt-4o-mini")
    upstream.queue(calls=[("weather", {"city": "Paris"}), ("calendar", {"day": "monday"})])
    client_tool = {"type": "function", "function": {"name": "calendar", "parameters": {"type": "object"}}}
    response = tenant.chat_key.request("POST", "/v1/chat/completions", {
        "model": "bridge/agent", "messages": [{"role": "user", "content": "Plan"}], "tools": [client_tool]})
    assert response.status_code == 200, response.text
    choice = response.json()["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert [c["function"]["name"] for c in choice["message"]["tool_calls"]] == ["calendar"]
    assert len(tool_server.calls("weather")) == 1
    assert {t["function"]["name"] for t in fake_openai.last.json()["tools"]} == {"calendar", "weather"}


def test_bound_variables_fill_arguments_the_model_never_sees(tenant: Tenant, tool_server: ToolServer,
                                                             upstream: Upstream) -> None:
    parameters = {"type": "object", "properties": {"city": {"type": "string"}, "account": {"type": "string"}},
                  "required": ["city", "account"]}
    tool = register_tool(tenant, tool_server, "orders", parameters=parameters, bound=["account"])
    agent_bridge(tenant, upstream.model, [tool["id"]])
    upstream.queue(calls=[("orders", {"city": "Lyon", "account": "forged"})])
    upstream.queue(text="Done.")
    reply = chat(tenant, "agent", "My orders", variables={"account": "acct-42"})
    assert reply.status_code == 200, reply.text
    assert tool_server.calls("orders") == [{"city": "Lyon", "account": "acct-42"}]
    schema = upstream.schema_seen("orders")
    assert "account" not in schema["properties"] and "account" not in schema.get("required", [])

    missing = chat(tenant, "agent", "My orders")
    assert missing.status_code == 400 and missing.json()["error"]["param"] == "variables"

    misspelt = chat(tenant, "agent", "My orders", variables={"account": "acct-42", "acount": "x"})
    assert misspelt.status_code == 400, misspelt.text
    assert misspelt.json()["error"]["code"] == "unknown_variable"
    assert misspelt.json()["error"]["param"] == "variables.acount"


def test_streamed_rounds_end_with_the_answer(tenant: Tenant, tool_server: ToolServer, upstream: Upstream) -> None:
    tool = register_tool(tenant, tool_server, "weather")
    agent_bridge(tenant, upstream.model, [tool["id"]])
    tool_server.behaviours["weather"] = ToolBehaviour(body={"sky": "rain"}, delay=0.7)
    upstream.queue(text="Let me look. ", calls=[("weather", {"city": "Bergen"})], prompt_tokens=5)
    upstream.queue(text="Rain in Bergen.", prompt_tokens=9)
    response = tenant.chat_key.request("POST", "/v1/chat/completions", {
        "model": "bridge/agent", "messages": [{"role": "user", "content": "Bergen?"}], "stream": True,
        "stream_options": {"include_usage": True}})
    assert response.status_code == 200, response.text
    lines = sse_lines(response)
    chunks = [json.loads(line[6:]) for line in lines if line.startswith("data: {")]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == "Let me look. Rain in Bergen."
    assert not any(c["choices"][0]["delta"].get("tool_calls") for c in chunks if c["choices"])
    finishes = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
    assert finishes == ["stop"]
    assert chunks[-1]["usage"]["prompt_tokens"] == 14
    assert lines[-1] == "data: [DONE]"
    activity = [json.loads(line.removeprefix(": junction-tool ")) for line in lines
                if line.startswith(": junction-tool ")]
    assert [(a["name"], a["status"]) for a in activity] == [("weather", "running"), ("weather", "done")]
    assert ": keep-alive" in lines  # the tool took 0.7 s, keep-alives every 0.2 s
    assert len({c["id"] for c in chunks}) == 1
    assert tool_server.calls("weather") == [{"city": "Bergen"}]


def test_streamed_bridge_chat_keeps_the_rounds_in_the_thread(tenant: Tenant, tool_server: ToolServer,
                                                             upstream: Upstream) -> None:
    tool = register_tool(tenant, tool_server, "weather")
    agent_bridge(tenant, upstream.model, [tool["id"]])
    upstream.queue(text="One moment. ", calls=[("weather", {"city": "Nice"})])
    upstream.queue(text="Warm in Nice.")
    response = chat(tenant, "agent", "Nice?", stream=True)
    assert response.status_code == 200, response.text
    thread = tenant.admin.ok("GET", f"/api/v1/threads/{response.headers['x-junction-thread-id']}")
    messages = thread["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "tool", "assistant"]
    assert messages[1]["tool_calls"][0]["function"]["name"] == "weather"
    assert "Nice" in messages[2]["content"] and messages[3]["content"] == "Warm in Nice."


def test_the_openai_sdk_reads_a_streamed_tool_loop(agents_server: JunctionProcess, tenant: Tenant,
                                                   tool_server: ToolServer, fake_openai: Any) -> None:
    import openai

    tool = register_tool(tenant, tool_server, "weather")
    agent_bridge(tenant, "openai/gpt-4o-mini", [tool["id"]])
    upstream = Upstream("openai", fake_openai, "openai/gpt-4o-mini")
    tool_server.behaviours["weather"] = ToolBehaviour(delay=0.5)
    upstream.queue(calls=[("weather", {"city": "Turin"})])
    upstream.queue(text="Foggy.")
    with openai.OpenAI(base_url=f"{agents_server.url}/v1", api_key=tenant.chat_key.key, max_retries=0) as client:
        stream = client.chat.completions.create(model="bridge/agent", stream=True,
                                                messages=[{"role": "user", "content": "Turin?"}])
        chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Foggy."
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]


def test_anthropic_ingress_streams_the_loop_with_pings(tenant: Tenant, tool_server: ToolServer,
                                                       fake_openai: Any) -> None:
    tool = register_tool(tenant, tool_server, "weather")
    agent_bridge(tenant, "openai/gpt-4o-mini", [tool["id"]])
    upstream = Upstream("openai", fake_openai, "openai/gpt-4o-mini")
    tool_server.behaviours["weather"] = ToolBehaviour(delay=0.7)
    upstream.queue(calls=[("weather", {"city": "Genoa"})])
    upstream.queue(text="Windy.")
    response = tenant.chat_key.client.post("/v1/messages", headers={"x-api-key": tenant.chat_key.key}, json={
        "model": "bridge/agent", "max_tokens": 100, "stream": True,
        "messages": [{"role": "user", "content": "Genoa?"}]})
    assert response.status_code == 200, response.text
    events = [line.removeprefix("event: ") for line in response.text.split("\n") if line.startswith("event: ")]
    assert events.count("ping") >= 3  # the one after message_start, then keep-alives while the tool ran
    assert events[-1] == "message_stop" and "tool_use" not in response.text
    data = [json.loads(line[6:]) for line in response.text.split("\n") if line.startswith("data: ")]
    text = "".join(d["delta"].get("text", "") for d in data if d["type"] == "content_block_delta")
    assert text == "Windy."
