"""``POST /v1/messages`` on the raw wire, without an SDK in between: Anthropic's exact SSE event
sequence and fields, and its error bodies."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from tests.fakes.sse import named_events
from tests.integration.anthropic_fixtures import (  # noqa: F401 (fixtures)
    anthropic_gateway,
    fake_anthropic,
    fake_anthropic_server,
)


def post(gateway, body: dict[str, Any], headers: dict[str, str]) -> tuple[int, bytes]:
    request = urllib.request.Request(
        f"{gateway.url}/v1/messages",
        data=json.dumps(body).encode(),
        headers={"content-type": "application/json", **headers},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_bad_key_and_bad_body_get_anthropic_error_bodies(anthropic_gateway):
    status, body = post(
        anthropic_gateway,
        {"model": "openai/gpt-4o-mini", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]},
        {"x-api-key": "wrong", "anthropic-version": "2023-06-01"},
    )
    assert status == 401 and json.loads(body)["error"]["type"] == "authentication_error"
    status, body = post(
        anthropic_gateway,
        {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
        {"x-api-key": anthropic_gateway.key},
    )
    error = json.loads(body)
    assert status == 400 and error["type"] == "error"
    assert error["error"]["type"] == "invalid_request_error" and "max_tokens" in error["error"]["message"]


def test_sse_is_anthropics_exact_event_sequence(anthropic_gateway, fake_openai):
    fake_openai.script(text="Hi there", chunk_size=4)
    status, body = post(
        anthropic_gateway,
        {
            "model": "openai/gpt-4o-mini",
            "max_tokens": 20,
            "stream": True,
            "messages": [{"role": "user", "content": "hi"}],
        },
        {"authorization": f"Bearer {anthropic_gateway.key}"},
    )
    assert status == 200
    events = named_events(body)
    names = [name for name, _ in events]
    data = [fields for _, fields in events]
    assert names == [
        "message_start",
        "ping",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert [d["type"] for d in data] == names
    assert data[0]["message"]["content"] == [] and data[0]["message"]["stop_reason"] is None
    assert data[6]["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}
    assert data[6]["usage"]["output_tokens"] == 7


def test_streamed_stop_sequence_and_start_usage_through_anthropic(anthropic_gateway, fake_anthropic):
    # Anthropic's own stream names the stop sequence in message_delta and the prompt's tokens in
    # message_start (clients such as LangChain read input tokens from there only).
    fake_anthropic.script(text="One, two, ", stop_sequence="three", input_tokens=31,
                          cache_read_input_tokens=5, output_tokens=4)
    status, body = post(
        anthropic_gateway,
        {
            "model": "anthropic/claude-sonnet-4-5",
            "max_tokens": 20,
            "stream": True,
            "stop_sequences": ["three"],
            "messages": [{"role": "user", "content": "Count to five"}],
        },
        {"authorization": f"Bearer {anthropic_gateway.key}"},
    )
    assert status == 200
    frames = dict(named_events(body))
    start_usage = frames["message_start"]["message"]["usage"]
    assert start_usage["input_tokens"] == 31 and start_usage["cache_read_input_tokens"] == 5
    assert frames["message_delta"]["delta"] == {"stop_reason": "stop_sequence", "stop_sequence": "three"}
    assert frames["message_delta"]["usage"]["output_tokens"] == 4
