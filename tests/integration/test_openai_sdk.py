"""The official openai SDK against a real Junction process, routed to the fake OpenAI upstream.

Each test checks what the client got *and* what Junction sent upstream.
"""

from __future__ import annotations

import json

import openai
import pytest

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def test_create_translates_model_and_swaps_credentials(openai_client, fake_openai):
    fake_openai.script(text="Hi there!", prompt_tokens=12, completion_tokens=3, cached_tokens=4,
                       reasoning_tokens=2)
    completion = openai_client.chat.completions.create(
        model="openai/gpt-4o",
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello"}],
        temperature=0.2, max_completion_tokens=50, seed=7, user="u-1", metadata={"team": "a"},
    )
    assert completion.choices[0].message.content == "Hi there!"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage.prompt_tokens == 12 and completion.usage.total_tokens == 15
    assert completion.usage.prompt_tokens_details.cached_tokens == 4
    assert completion.usage.completion_tokens_details.reasoning_tokens == 2

    sent = fake_openai.last
    body = sent.json()
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == "Bearer sk-upstream-test"  # never the client's key
    assert body["model"] == "gpt-4o"
    assert body["messages"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello"}]
    assert body["temperature"] == 0.2 and body["max_completion_tokens"] == 50 and body["seed"] == 7
    assert body["user"] == "u-1" and body["metadata"] == {"team": "a"}
    assert "stream" not in body and "stream_options" not in body


def test_response_headers_name_the_deployment(openai_client, fake_openai):
    raw = openai_client.chat.completions.with_raw_response.create(
        model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert raw.headers["x-junction-deployment"] == "openai/gpt-4o-mini"
    assert len(raw.headers["x-request-id"]) >= 16
    assert "x-junction-fallback" not in raw.headers


def test_client_request_id_is_echoed(openai_client, fake_openai):
    raw = openai_client.chat.completions.with_raw_response.create(
        model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "hi"}],
        extra_headers={"x-request-id": "trace-abc-123"})
    assert raw.headers["x-request-id"] == "trace-abc-123"


def test_unmodelled_parameters_pass_through_unchanged(openai_client, fake_openai):
    fake_openai.request_fields |= {"brand_new_param"}  # a parameter OpenAI added after Junction
    openai_client.chat.completions.create(
        model="openai/gpt-4o", messages=[{"role": "user", "content": "hi"}],
        service_tier="flex", prediction={"type": "content", "content": "hello"},
        extra_body={"brand_new_param": {"nested": [1, 2.5, None, "x"]}},
    )
    body = fake_openai.last.json()
    assert body["prediction"] == {"type": "content", "content": "hello"}
    assert body["service_tier"] == "flex"
    assert body["brand_new_param"] == {"nested": [1, 2.5, None, "x"]}


def test_stream_delivers_text_and_usage(openai_client, fake_openai):
    fake_openai.script(text="The quick brown fox jumps", prompt_tokens=9, completion_tokens=5)
    stream = openai_client.chat.completions.create(
        model="openai/gpt-4o", messages=[{"role": "user", "content": "go"}], stream=True,
        stream_options={"include_usage": True})
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "The quick brown fox jumps"
    assert sum(1 for c in chunks if c.choices and c.choices[0].delta.content) > 3  # really streamed
    assert chunks[0].choices[0].delta.role == "assistant"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage.total_tokens == 14
    body = fake_openai.last.json()
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}


def test_stream_without_include_usage_has_no_usage_chunk(openai_client, fake_openai):
    chunks = list(openai_client.chat.completions.create(
        model="openai/gpt-4o", messages=[{"role": "user", "content": "go"}], stream=True))
    assert all(c.usage is None for c in chunks)
    assert all(c.choices for c in chunks)
    # Junction still asks the upstream for usage, to meter the call.
    assert fake_openai.last.json()["stream_options"] == {"include_usage": True}


def test_tools_round_trip(openai_client, fake_openai):
    fake_openai.script(tool_calls=[
        {"id": "call_1", "name": "get_weather", "arguments": '{"city": "Paris"}'},
        {"id": "call_2", "name": "get_weather", "arguments": '{"city": "Oslo"}'},
    ])
    completion = openai_client.chat.completions.create(
        model="openai/gpt-4o", messages=[{"role": "user", "content": "Weather in Paris and Oslo?"}],
        tools=[WEATHER_TOOL], tool_choice="auto", parallel_tool_calls=True)
    message = completion.choices[0].message
    assert completion.choices[0].finish_reason == "tool_calls"
    assert [(c.id, c.function.name, json.loads(c.function.arguments)) for c in message.tool_calls] == [
        ("call_1", "get_weather", {"city": "Paris"}), ("call_2", "get_weather", {"city": "Oslo"})]
    body = fake_openai.last.json()
    assert body["tools"] == [WEATHER_TOOL] and body["tool_choice"] == "auto"
    assert body["parallel_tool_calls"] is True

    # The second turn carries the assistant's tool calls and the tool results back upstream.
    follow_up = [
        {"role": "user", "content": "Weather in Paris and Oslo?"},
        message.model_dump(exclude_none=True, exclude={"annotations"}),
        {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
        {"role": "tool", "tool_call_id": "call_2", "content": "4C"},
    ]
    fake_openai.script(text="Paris 18C, Oslo 4C")
    answer = openai_client.chat.completions.create(
        model="openai/gpt-4o", messages=follow_up, tools=[WEATHER_TOOL],
        tool_choice={"type": "function", "function": {"name": "get_weather"}})
    assert answer.choices[0].message.content == "Paris 18C, Oslo 4C"
    sent = fake_openai.last.json()
    assert sent["messages"][1]["tool_calls"][1]["function"] == {"name": "get_weather",
                                                                "arguments": '{"city": "Oslo"}'}
    assert sent["messages"][3] == {"role": "tool", "tool_call_id": "call_2", "content": "4C"}
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}


def test_streamed_tool_call_arguments_reassemble(openai_client, fake_openai):
    arguments = json.dumps({"city": "Reykjavik", "units": "metric", "days": 3})
    fake_openai.script(tool_calls=[{"id": "call_9", "name": "get_weather", "arguments": arguments}])
    with openai_client.chat.completions.stream(
            model="openai/gpt-4o", messages=[{"role": "user", "content": "weather?"}],
            tools=[WEATHER_TOOL]) as stream:
        deltas = [event for event in stream if event.type == "tool_calls.function.arguments.delta"]
        final = stream.get_final_completion()
    assert len(deltas) > 3  # arguments arrived in many pieces, in order
    call = final.choices[0].message.tool_calls[0]
    assert (call.id, call.function.name, call.function.arguments) == ("call_9", "get_weather", arguments)
    assert final.choices[0].finish_reason == "tool_calls"


def test_legacy_function_call_history_is_forwarded(openai_client, fake_openai):
    """A conversation from the deprecated ``functions`` API keeps its assistant ``function_call``:
    dropping it leaves an empty assistant message that OpenAI refuses."""
    call = {"name": "get_weather", "arguments": '{"city":"Paris"}'}
    openai_client.chat.completions.create(model="openai/gpt-4o", messages=[
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": None, "function_call": call},
        {"role": "function", "name": "get_weather", "content": "sunny"}])
    sent = fake_openai.last.json()["messages"]
    assert sent[1] == {"role": "assistant", "function_call": call}
    assert sent[2] == {"role": "function", "name": "get_weather", "content": "sunny"}


def test_json_schema_response_format_is_forwarded(openai_client, fake_openai):
    schema = {"type": "object", "properties": {"answer": {"type": "integer"}}, "required": ["answer"],
              "additionalProperties": False}
    fake_openai.script(text='{"answer": 42}')
    completion = openai_client.chat.completions.create(
        model="openai/gpt-4o", messages=[{"role": "user", "content": "6*7?"}],
        response_format={"type": "json_schema", "json_schema": {"name": "result", "schema": schema, "strict": True}})
    assert json.loads(completion.choices[0].message.content) == {"answer": 42}
    assert fake_openai.last.json()["response_format"] == {
        "type": "json_schema", "json_schema": {"name": "result", "schema": schema, "strict": True}}


def test_vision_parts_are_forwarded(openai_client, fake_openai):
    content = [{"type": "text", "text": "What is this?"},
               {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"}},
               {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}}]
    openai_client.chat.completions.create(model="openai/gpt-4o", messages=[{"role": "user", "content": content}])
    assert fake_openai.last.json()["messages"][0]["content"] == content


def test_alias_routes_to_its_deployment(openai_client, fake_openai):
    raw = openai_client.chat.completions.with_raw_response.create(
        model="fast", messages=[{"role": "user", "content": "hi"}])
    assert raw.headers["x-junction-deployment"] == "openai/gpt-4o-mini"
    assert fake_openai.last.json()["model"] == "gpt-4o-mini"


def test_alias_falls_back_when_the_deployment_fails(openai_client, fake_openai):
    fake_openai.fail_next(500, {"error": {"message": "boom", "type": "server_error"}})
    raw = openai_client.chat.completions.with_raw_response.create(
        model="fast", messages=[{"role": "user", "content": "hi"}])
    assert raw.headers["x-junction-fallback"] == "true"
    assert raw.headers["x-junction-deployment"] == "openai/gpt-4o"
    assert [r.json()["model"] for r in fake_openai.requests] == ["gpt-4o-mini", "gpt-4o"]


def test_upstream_rate_limit_keeps_retry_after(openai_client, fake_openai):
    fake_openai.fail_next(429, {"error": {"message": "Rate limit reached for gpt-4o", "type": "requests",
                                          "code": "rate_limit_exceeded"}}, {"Retry-After": "7"})
    with pytest.raises(openai.RateLimitError) as caught:
        openai_client.chat.completions.create(model="openai/gpt-4o", messages=[{"role": "user", "content": "x"}])
    assert caught.value.response.headers["retry-after"] == "7"
    assert "Rate limit reached" in caught.value.message
    assert caught.value.code == "rate_limit_exceeded"


def test_upstream_overloaded_keeps_retry_after(openai_client, fake_openai):
    fake_openai.fail_next(503, {"error": {"message": "The engine is currently overloaded", "type": "server_error"}},
                          {"Retry-After": "12"})
    with pytest.raises(openai.InternalServerError) as caught:
        openai_client.chat.completions.create(model="openai/gpt-4o", messages=[{"role": "user", "content": "x"}])
    assert caught.value.status_code == 503
    assert caught.value.response.headers["retry-after"] == "12"


def test_upstream_rejecting_our_key_is_an_authentication_error(openai_client, fake_openai):
    fake_openai.fail_next(401, {"error": {"message": "Incorrect API key provided", "type": "invalid_request_error",
                                          "code": "invalid_api_key"}})
    with pytest.raises(openai.AuthenticationError) as caught:
        openai_client.chat.completions.create(model="openai/gpt-4o", messages=[{"role": "user", "content": "x"}])
    assert "openai rejected the gateway's credentials" in caught.value.message


def test_upstream_server_error_is_a_502(openai_client, fake_openai):
    fake_openai.fail_next(500, {"error": {"message": "The server had an error", "type": "server_error"}})
    with pytest.raises(openai.InternalServerError) as caught:
        openai_client.chat.completions.create(model="openai/gpt-4o", messages=[{"role": "user", "content": "x"}])
    assert caught.value.status_code == 502
    assert caught.value.body["type"] == "upstream_error"


NGINX_PAGE = ("<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway"
              "</h1></center>\r\n<hr><center>nginx/1.18.0 (Ubuntu) lb-7.internal.corp</center>\r\n</body></html>")


def test_an_upstream_html_error_page_is_summarised_not_relayed(openai_client, fake_openai):
    fake_openai.fail_next(502, NGINX_PAGE)
    with pytest.raises(openai.InternalServerError) as caught:
        openai_client.chat.completions.create(model="openai/gpt-4o", messages=[{"role": "user", "content": "x"}])
    assert caught.value.status_code == 502
    assert "502 Bad Gateway" in caught.value.message
    assert "<" not in caught.value.message and "internal.corp" not in caught.value.message


def test_an_upstream_404_without_an_api_error_is_a_gateway_fault_not_an_unknown_model(openai_client, fake_openai):
    """A 404 page (a wrong base_url, a proxy) is not the provider saying the model does not exist."""
    fake_openai.fail_next(404, "404 page not found")
    with pytest.raises(openai.InternalServerError) as caught:
        openai_client.chat.completions.create(model="openai/gpt-4o", messages=[{"role": "user", "content": "x"}])
    assert caught.value.status_code == 502
    assert "HTTP 404" in caught.value.message
    fake_openai.fail_next(404, {"error": {"message": "The model `gpt-9` does not exist", "type": "invalid_request_error",
                                          "code": "model_not_found"}})
    with pytest.raises(openai.NotFoundError) as not_found:
        openai_client.chat.completions.create(model="openai/gpt-9", messages=[{"role": "user", "content": "x"}])
    assert not_found.value.code == "model_not_found"


def test_upstream_bad_request_passes_its_message(openai_client, fake_openai):
    fake_openai.fail_next(400, {"error": {"message": "Invalid value for 'temperature'", "type": "invalid_request_error",
                                          "param": "temperature", "code": None}})
    with pytest.raises(openai.BadRequestError) as caught:
        openai_client.chat.completions.create(model="openai/gpt-4o", messages=[{"role": "user", "content": "x"}],
                                              temperature=1.5)
    assert "Invalid value for 'temperature'" in caught.value.message
    assert caught.value.param == "temperature"


def test_upstream_timeout_is_a_504(openai_client, fake_openai):
    fake_openai.script(text="slow answer", delay=3.0)  # the gateway's read_timeout is 2s
    with pytest.raises(openai.InternalServerError) as caught:
        openai_client.chat.completions.create(model="openai/gpt-4o", messages=[{"role": "user", "content": "x"}])
    assert caught.value.status_code == 504
    assert caught.value.body["type"] == "timeout_error"


def test_unknown_model_is_a_404(openai_client, fake_openai):
    with pytest.raises(openai.NotFoundError) as caught:
        openai_client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    assert caught.value.code == "model_not_found" and "provider/model" in caught.value.message
    with pytest.raises(openai.NotFoundError):
        openai_client.chat.completions.create(model="nosuch/gpt-4o", messages=[{"role": "user", "content": "x"}])
    assert fake_openai.requests == []


def test_models_lists_provider_models_and_aliases(openai_client, fake_openai):
    ids = [model.id for model in openai_client.models.list()]
    assert "fast" in ids and "openai/gpt-4o" in ids and "openai/gpt-4o-mini" in ids
    # Fetched from the provider when the gateway started, and served from that cache since.
    assert fake_openai.requests == []


def test_upstream_forbidden_is_a_403(openai_client, fake_openai):
    fake_openai.fail_next(403, {"error": {"message": "Project does not have access to model gpt-4o",
                                          "type": "invalid_request_error", "code": "model_not_found"}})
    with pytest.raises(openai.PermissionDeniedError) as caught:
        openai_client.chat.completions.create(model="openai/gpt-4o", messages=[{"role": "user", "content": "x"}])
    assert "does not have access" in caught.value.message


def test_an_unreadable_model_list_does_not_stop_start_up(fake_openai, tmp_path):
    """An OpenAI-compatible upstream whose /models answers in its own shape is logged and skipped;
    start-up (which fetches every model list) goes on, and chat works."""
    from junction.testing.server import JunctionProcess
    from tests.conftest import openai_provider_table

    fake_openai.fail_next(200, {"object": "list", "models": ["gpt-4o"]})
    with JunctionProcess(tmp_path, openai_provider_table(fake_openai)) as server:
        client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=server.key, max_retries=0)
        assert client.chat.completions.create(
            model="openai/gpt-4o", messages=[{"role": "user", "content": "hi"}]).choices[0].message.content
        fake_openai.fail_next(200, "<html>not a model list</html>")
        assert [model.id for model in client.models.list()] == []
    assert "could not read" in server.output()
