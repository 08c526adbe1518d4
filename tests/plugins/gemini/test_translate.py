"""Unified ⇄ Gemini translation on realistic payloads, both directions."""

from __future__ import annotations

import json

import msgspec
import pytest

from junction.errors import (
    AuthenticationFailed,
    InvalidRequest,
    NotFound,
    RateLimited,
    UpstreamError,
    UpstreamOverloaded,
)
from junction.formats.openai import decode_chat_request
from junction.providers.gemini.config import GeminiConfig
from junction.providers.gemini.errors import map_gemini_error
from junction.providers.gemini.stream import GeminiStreamReader
from junction.providers.gemini.translate import made_up_call_id, to_gemini, to_unified
from junction.providers.gemini.wire import encoder, response_decoder
from junction.schemas.stream import (
    Finish,
    ReasoningDelta,
    StreamDone,
    StreamStart,
    TextDelta,
    ToolCallDelta,
    UsageReport,
)
from junction.testing.scripted_upstream import PIXEL_DATA_URL, PIXEL_PNG_BASE64

CONFIG = GeminiConfig(api_key="k")


def gemini_body(request: dict) -> dict:
    """What the adapter would POST for an OpenAI-shaped request body."""
    return json.loads(encoder.encode(to_gemini(decode_chat_request(json.dumps(request).encode()), CONFIG)))


WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def test_multi_turn_with_parallel_tool_results_and_an_image() -> None:
    body = gemini_body(
        {
            "model": "gemini/gemini-2.5-flash",
            "messages": [
                {"role": "system", "content": "You are terse."},
                {"role": "developer", "content": "Use metric units."},
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "Weather in Oslo and Bergen? Also this:"},
                        {"type": "image_url", "image_url": {"url": PIXEL_DATA_URL}},
                    ],
                },
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_a",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
                        },
                        {
                            "id": "call_b",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city":"Bergen"}'},
                        },
                    ],
                    "provider_metadata": {"gemini": {"thought_signatures": {"call_a": "sig-A"}}},
                },
                {"role": "tool", "tool_call_id": "call_a", "content": '{"temp_c": 4}'},
                {"role": "tool", "tool_call_id": "call_b", "content": "rainy"},
                {"role": "user", "content": "Thanks. Summarise."},
            ],
            "tools": [WEATHER],
            "tool_choice": "required",
            "temperature": 0.2,
            "top_p": 0.9,
            "max_tokens": 300,
            "stop": "END",
            "seed": 7,
            "n": 1,
        }
    )
    assert body["systemInstruction"] == {"parts": [{"text": "You are terse.\n\nUse metric units."}]}
    user, model, results = body["contents"]
    assert user == {
        "role": "user",
        "parts": [
            {"text": "Weather in Oslo and Bergen? Also this:"},
            {"inlineData": {"mimeType": "image/png", "data": PIXEL_PNG_BASE64}},
        ],
    }
    assert model == {
        "role": "model",
        "parts": [
            {
                "functionCall": {"name": "get_weather", "args": {"city": "Oslo"}, "id": "call_a"},
                "thoughtSignature": "sig-A",
            },
            {"functionCall": {"name": "get_weather", "args": {"city": "Bergen"}, "id": "call_b"}},
        ],
    }
    # Both results of the parallel calls, then the next user text, in one user turn.
    assert results == {
        "role": "user",
        "parts": [
            {"functionResponse": {"name": "get_weather", "response": {"temp_c": 4}, "id": "call_a"}},
            {"functionResponse": {"name": "get_weather", "response": {"output": "rainy"}, "id": "call_b"}},
            {"text": "Thanks. Summarise."},
        ],
    }
    assert body["tools"] == [
        {
            "functionDeclarations": [
                {
                    "name": "get_weather",
                    "description": "Weather for a city",
                    "parametersJsonSchema": WEATHER["function"]["parameters"],
                }
            ]
        }
    ]
    assert body["toolConfig"] == {"functionCallingConfig": {"mode": "ANY"}}
    assert body["generationConfig"] == {
        "temperature": 0.2,
        "topP": 0.9,
        "maxOutputTokens": 300,
        "stopSequences": ["END"],
        "candidateCount": 1,
        "seed": 7,
    }


def test_made_up_ids_are_not_sent_back_to_gemini() -> None:
    made_up = made_up_call_id("resp-1", 0, 0, "get_weather")
    body = gemini_body(
        {
            "model": "m",
            "messages": [
                {"role": "user", "content": "hi"},
                {
                    "role": "assistant",
                    "tool_calls": [
                        {
                            "id": made_up,
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": "{}"},
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": made_up, "content": "{}"},
            ],
        }
    )
    assert body["contents"][1]["parts"][0]["functionCall"] == {"name": "get_weather", "args": {}}
    assert body["contents"][2]["parts"][0]["functionResponse"] == {"name": "get_weather", "response": {}}


def test_json_schema_goes_out_unchanged_as_response_json_schema() -> None:
    schema = {
        "type": "object",
        "properties": {"tags": {"type": ["array", "null"], "items": {"type": "string"}}},
        "additionalProperties": False,
    }
    body = gemini_body(
        {
            "model": "m",
            "messages": [{"role": "user", "content": "x"}],
            "response_format": {"type": "json_schema", "json_schema": {"name": "t", "schema": schema}},
        }
    )
    assert body["generationConfig"] == {"responseMimeType": "application/json", "responseJsonSchema": schema}


def test_reasoning_effort_becomes_a_thinking_budget() -> None:
    body = gemini_body(
        {"model": "m", "messages": [{"role": "user", "content": "x"}], "reasoning_effort": "medium"}
    )
    assert body["generationConfig"]["thinkingConfig"] == {"thinkingBudget": 8192, "includeThoughts": True}


@pytest.mark.parametrize(
    ("request_fields", "param"),
    [
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "image_url", "image_url": {"url": "https://x.test/a.png"}}],
                    }
                ]
            },
            "messages[0].content[0].image_url.url",
        ),
        ({"messages": [{"role": "user", "content": "x"}], "logprobs": True}, "logprobs"),
        ({"messages": [{"role": "user", "content": "x"}], "logit_bias": {"1": 2}}, "logit_bias"),
        (
            {
                "messages": [
                    {"role": "user", "content": "x"},
                    {"role": "tool", "tool_call_id": "nope", "content": "1"},
                ]
            },
            "messages[1].tool_call_id",
        ),
        (
            {
                "messages": [
                    {"role": "user", "content": "x"},
                    {
                        "role": "assistant",
                        "tool_calls": [
                            {"id": "c", "type": "function", "function": {"name": "f", "arguments": "[1]"}}
                        ],
                    },
                ]
            },
            "messages[1].tool_calls[0].function.arguments",
        ),
        ({"messages": [{"role": "system", "content": "only a system prompt"}]}, "messages"),
    ],
)
def test_what_gemini_cannot_take_is_a_400_naming_the_field(request_fields: dict, param: str) -> None:
    with pytest.raises(InvalidRequest) as raised:
        gemini_body({"model": "m", **request_fields})
    assert raised.value.param == param


def test_http_image_urls_pass_as_file_data_when_the_operator_allows_it() -> None:
    request = decode_chat_request(
        json.dumps(
            {
                "model": "m",
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "image_url", "image_url": {"url": "https://example.test/cat.webp"}}
                        ],
                    }
                ],
            }
        ).encode()
    )
    body = to_gemini(request, GeminiConfig(pass_image_urls=True))
    file_data = body.contents[0].parts[0].file_data
    assert file_data is not None
    assert (file_data.file_uri, file_data.mime_type) == ("https://example.test/cat.webp", "image/webp")


GEMINI_RESPONSE = {
    "candidates": [
        {
            "content": {
                "role": "model",
                "parts": [
                    {"text": "Let me check both.", "thought": True},
                    {"text": "Checking."},
                    {
                        "functionCall": {"name": "get_weather", "args": {"city": "Oslo"}},
                        "thoughtSignature": "SIG1",
                    },
                    {"functionCall": {"name": "get_weather", "args": {"city": "Bergen"}}},
                ],
            },
            "finishReason": "STOP",
            "index": 0,
            "safetyRatings": [{"category": "HARM_CATEGORY_HATE_SPEECH", "probability": "NEGLIGIBLE"}],
        }
    ],
    "usageMetadata": {
        "promptTokenCount": 120,
        "candidatesTokenCount": 18,
        "cachedContentTokenCount": 100,
        "thoughtsTokenCount": 12,
        "totalTokenCount": 150,
    },
    "modelVersion": "gemini-2.5-flash",
    "responseId": "abcXYZ",
}


def test_response_with_thoughts_calls_and_usage() -> None:
    response = to_unified(response_decoder.decode(json.dumps(GEMINI_RESPONSE)), "gemini-2.5-flash")
    [choice] = response.choices
    assert choice.finish_reason == "tool_calls"
    message = choice.message
    assert message.content == "Checking."
    assert message.reasoning == "Let me check both."
    calls = message.tool_calls or []
    assert [(c.function.name, json.loads(c.function.arguments)) for c in calls] == [
        ("get_weather", {"city": "Oslo"}),
        ("get_weather", {"city": "Bergen"}),
    ]
    assert calls[0].id == made_up_call_id("abcXYZ", 0, 0, "get_weather") != calls[1].id
    assert message.provider_metadata == {"gemini": {"thought_signatures": {calls[0].id: "SIG1"}}}
    assert response.id == "abcXYZ" and response.model == "gemini-2.5-flash"
    usage = response.usage
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (120, 30, 150)
    assert usage.cached_tokens == 100 and usage.reasoning_tokens == 12


def test_the_answer_round_trips_into_the_next_request() -> None:
    first = to_unified(response_decoder.decode(json.dumps(GEMINI_RESPONSE)), "gemini-2.5-flash")
    assistant = msgspec.to_builtins(first.choices[0].message)
    calls = assistant["tool_calls"]
    body = gemini_body(
        {
            "model": "m",
            "messages": [
                {"role": "user", "content": "Weather?"},
                assistant,
                {"role": "tool", "tool_call_id": calls[0]["id"], "content": "sunny"},
                {"role": "tool", "tool_call_id": calls[1]["id"], "content": "windy"},
            ],
        }
    )
    model_turn = body["contents"][1]["parts"]
    assert model_turn[0] == {"text": "Checking."}
    assert model_turn[1] == {
        "functionCall": {"name": "get_weather", "args": {"city": "Oslo"}},
        "thoughtSignature": "SIG1",
    }
    assert [p["functionResponse"]["response"] for p in body["contents"][2]["parts"]] == [
        {"output": "sunny"},
        {"output": "windy"},
    ]


@pytest.mark.parametrize(
    ("gemini", "openai"),
    [
        ("STOP", "stop"),
        ("MAX_TOKENS", "length"),
        ("SAFETY", "content_filter"),
        ("RECITATION", "content_filter"),
        ("PROHIBITED_CONTENT", "content_filter"),
        ("SPII", "content_filter"),
        ("BLOCKLIST", "content_filter"),
        ("OTHER", "stop"),
    ],
)
def test_finish_reasons(gemini: str, openai: str) -> None:
    body = {"candidates": [{"content": {"role": "model", "parts": [{"text": "x"}]}, "finishReason": gemini}]}
    assert to_unified(response_decoder.decode(json.dumps(body)), "m").choices[0].finish_reason == openai


def test_a_blocked_prompt_is_a_content_filter_finish() -> None:
    body = {
        "promptFeedback": {"blockReason": "SAFETY"},
        "usageMetadata": {"promptTokenCount": 5, "totalTokenCount": 5},
    }
    response = to_unified(response_decoder.decode(json.dumps(body)), "m")
    assert (
        response.choices[0].finish_reason == "content_filter" and response.choices[0].message.content is None
    )


def test_stream_events_in_order_with_the_last_usage() -> None:
    chunks = [
        {
            "candidates": [{"content": {"role": "model", "parts": [{"text": "Che"}]}, "index": 0}],
            "usageMetadata": {"promptTokenCount": 9, "totalTokenCount": 9},
            "modelVersion": "gemini-2.5-pro",
            "responseId": "r1",
        },
        {
            "candidates": [{"content": {"role": "model", "parts": [{"text": "cking."}]}, "index": 0}],
            "responseId": "r1",
        },
        {
            "candidates": [
                {
                    "content": {
                        "role": "model",
                        "parts": [{"functionCall": {"name": "a", "args": {"x": 1}}, "thoughtSignature": "S"}],
                    },
                    "index": 0,
                }
            ],
            "responseId": "r1",
        },
        {
            "candidates": [
                {
                    "content": {"role": "model", "parts": [{"functionCall": {"name": "b", "args": {}}}]},
                    "finishReason": "STOP",
                    "index": 0,
                }
            ],
            "usageMetadata": {"promptTokenCount": 9, "candidatesTokenCount": 4, "totalTokenCount": 13},
            "responseId": "r1",
        },
    ]
    reader = GeminiStreamReader("gemini-2.5-pro")
    events = [event for chunk in chunks for event in reader.read(json.dumps(chunk))] + reader.close()
    start, text1, text2, call_a, call_b, signatures, finish, usage, done = events
    assert isinstance(start, StreamStart) and start.id == "r1" and start.model == "gemini-2.5-pro"
    assert [text1, text2] == [TextDelta(text="Che"), TextDelta(text="cking.")]
    assert isinstance(call_a, ToolCallDelta) and (call_a.index, call_a.name, call_a.arguments) == (
        0,
        "a",
        '{"x":1}',
    )
    assert isinstance(call_b, ToolCallDelta) and call_b.index == 1 and call_b.id != call_a.id
    assert call_a.id == made_up_call_id("r1", 0, 0, "a")
    assert isinstance(signatures, ReasoningDelta)
    assert signatures.provider_metadata == {"gemini": {"thought_signatures": {call_a.id: "S"}}}
    assert finish == Finish(reason="tool_calls")
    assert (
        isinstance(usage, UsageReport)
        and usage.usage.total_tokens == 13
        and usage.usage.completion_tokens == 4
    )
    assert isinstance(done, StreamDone)


def test_an_error_inside_the_stream_raises() -> None:
    reader = GeminiStreamReader("m")
    reader.read(json.dumps({"candidates": [{"content": {"parts": [{"text": "a"}]}}]}))
    with pytest.raises(UpstreamOverloaded):
        reader.read(
            json.dumps(
                {"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}}
            )
        )


def test_an_empty_stream_is_a_502() -> None:
    with pytest.raises(UpstreamError):
        GeminiStreamReader("m").close()


def _error(status: int, body: object, headers: dict[str, str] | None = None):
    return map_gemini_error("gemini", status, json.dumps(body).encode(), headers or {})


def test_invalid_key_reported_as_400_is_a_401() -> None:
    error = _error(
        400,
        {
            "error": {
                "code": 400,
                "message": "API key not valid. Please pass a valid API key.",
                "status": "INVALID_ARGUMENT",
                "details": [
                    {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}
                ],
            }
        },
    )
    assert isinstance(error, AuthenticationFailed) and error.status == 401


def test_resource_exhausted_carries_the_retry_delay() -> None:
    error = _error(
        429,
        [
            {
                "error": {
                    "code": 429,
                    "message": "Quota exceeded",
                    "status": "RESOURCE_EXHAUSTED",
                    "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "12.3s"}],
                }
            }
        ],
    )
    assert isinstance(error, RateLimited) and error.headers == {"Retry-After": "13"}


def test_other_statuses() -> None:
    assert isinstance(
        _error(404, {"error": {"code": 404, "message": "models/x is not found", "status": "NOT_FOUND"}}),
        NotFound,
    )
    too_long = _error(
        400,
        {
            "error": {
                "code": 400,
                "status": "INVALID_ARGUMENT",
                "message": "The input token count (1200000) exceeds the maximum number of tokens allowed "
                "(1048576).",
            }
        },
    )
    assert isinstance(too_long, InvalidRequest) and too_long.code == "context_length_exceeded"
    internal = _error(
        500, {"error": {"code": 500, "message": "Internal error encountered.", "status": "INTERNAL"}}
    )
    assert isinstance(internal, UpstreamError) and internal.status == 502
    assert _error(502, b"<html>bad gateway</html>".decode()).status == 502


def test_permission_denied_and_unavailable() -> None:
    denied = _error(403, {"error": {"code": 403, "message": "Permission denied on resource project x.",
                                    "status": "PERMISSION_DENIED"}})
    assert denied.status == 403 and "Permission denied" in denied.message
    overloaded = _error(503, {"error": {"code": 503, "status": "UNAVAILABLE",
                                        "message": "The model is overloaded. Please try again later."}})
    assert isinstance(overloaded, UpstreamOverloaded) and overloaded.status == 503


def test_several_candidates_become_several_choices() -> None:
    body = {"candidates": [
        {"content": {"role": "model", "parts": [{"text": "Yes."}]}, "finishReason": "STOP", "index": 0},
        {"content": {"role": "model", "parts": [{"text": "No"}]}, "finishReason": "MAX_TOKENS", "index": 1}]}
    response = to_unified(response_decoder.decode(json.dumps(body)), "m")
    assert [(c.index, c.message.content, c.finish_reason) for c in response.choices] == [
        (0, "Yes.", "stop"), (1, "No", "length")]
    request = gemini_body({"model": "m", "n": 2, "messages": [{"role": "user", "content": "Yes or no?"}]})
    assert request["generationConfig"] == {"candidateCount": 2}


def test_a_malformed_function_call_is_an_upstream_error_not_a_stop() -> None:
    body = {"candidates": [{"finishReason": "MALFORMED_FUNCTION_CALL", "index": 0,
                            "finishMessage": "Malformed function call: print(default_api.lookup(q=x))"}],
            "usageMetadata": {"promptTokenCount": 50, "totalTokenCount": 50}}
    with pytest.raises(UpstreamError) as raised:
        to_unified(response_decoder.decode(json.dumps(body)), "m")
    assert raised.value.code == "malformed_function_call"
    # The finish message quotes model output: it is not put in the error (errors are logged).
    assert "default_api" not in raised.value.message
    reader = GeminiStreamReader("m")
    reader.read(json.dumps({"candidates": [{"content": {"role": "model", "parts": [{"text": "Let me"}]}}]}))
    with pytest.raises(UpstreamError):
        reader.read(json.dumps(body))


def test_a_candidate_whose_content_has_no_parts_is_read() -> None:
    """Thinking models that spend the whole budget on thoughts answer ``"content": {"role": "model"}``."""
    body = {"candidates": [{"content": {"role": "model"}, "finishReason": "MAX_TOKENS", "index": 0}],
            "usageMetadata": {"promptTokenCount": 5, "thoughtsTokenCount": 64, "totalTokenCount": 69}}
    choice = to_unified(response_decoder.decode(json.dumps(body)), "m").choices[0]
    assert (choice.finish_reason, choice.message.content) == ("length", None)
    events = GeminiStreamReader("m").read(json.dumps(body))
    assert events[-1] == Finish(reason="length")
