"""Hostile input against a real gateway (issue #16): every refusal is a 4xx in the OpenAI error
shape, made before the work is done, and nothing the gateway holds (a credential) is echoed."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import UPSTREAM_KEY

CHAT = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def http(gateway):
    with httpx.Client(base_url=gateway.url, headers={"authorization": f"Bearer {gateway.key}"},
                      timeout=20) as client:
        yield client


def nested(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


def deep_body(route: str, depth: int) -> bytes:
    """A body for ``route`` whose one free-form member is nested ``depth`` levels deep."""
    inner = b"[" * depth + b"]" * depth
    if route == "/v1/chat/completions":
        return (b'{"model":"openai/gpt-4o-mini","messages":[{"role":"user","content":"x"}],"metadata_x":'
                + inner + b"}")
    if route == "/v1/messages":
        return (b'{"model":"openai/gpt-4o-mini","max_tokens":5,"messages":[{"role":"user","content":"x"}],'
                b'"metadata":{"user_id":"u"},"tools":[{"name":"t","input_schema":' + nested(depth) + b"}]}")
    if route == "/api/v1/bridges":
        return (b'{"org_id":"nope","name":"b","slug":"b","model":"openai/gpt-4o-mini","prompt":"p","params":'
                + nested(depth) + b"}")
    return b'{"name":"x","extra":' + inner + b"}"


@pytest.mark.parametrize("route", ["/v1/chat/completions", "/v1/messages", "/v1/embeddings",
                                   "/api/v1/admin/orgs", "/api/v1/admin/keys", "/api/v1/bridges",
                                   "/api/v1/bridges/some-bridge/chat"])
@pytest.mark.parametrize("depth", [200, 975, 5000])
def test_deeply_nested_json_is_a_400_on_every_route(http, fake_openai, gateway, route, depth):
    response = http.post(route, content=deep_body(route, depth), headers={"content-type": "application/json"})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error.get("code", "json_too_deep") == "json_too_deep", error  # the Anthropic shape has none
    assert "limits.max_json_depth (64 levels)" in error["message"]
    assert fake_openai.requests == []
    assert "RecursionError" not in gateway.output()


def test_nesting_within_the_limit_is_served(http, fake_openai):
    schema: dict = {"type": "object"}
    for _ in range(20):
        schema = {"type": "object", "properties": {"x": schema}}
    tools = [{"type": "function", "function": {"name": "f", "parameters": schema}}]
    response = http.post("/v1/chat/completions", json={**CHAT, "tools": tools})
    assert response.status_code == 200, response.text
    assert fake_openai.last.json()["tools"] == tools


# --- credentials are never echoed ---------------------------------------------------------------


@pytest.mark.parametrize("status", [401, 400, 500])
def test_upstream_error_naming_the_credential_is_redacted(http, fake_openai, gateway, status):
    other = "sk-proj-" + "Q" * 40
    google = "AIzaSy" + "B" * 33
    fake_openai.fail_next(status, {"error": {
        "message": f"Incorrect API key provided: {UPSTREAM_KEY}. Also seen: {other} and {google}; "
                   f"see https://platform.openai.com/account/api-keys.",
        "type": "invalid_request_error", "code": "invalid_api_key"}})
    response = http.post("/v1/chat/completions", json=CHAT)
    assert response.status_code >= 400
    message = response.json()["error"]["message"]
    for secret in (UPSTREAM_KEY, other, google):
        assert secret not in message
        assert secret not in gateway.output()
    assert "Incorrect API key provided" in message and "platform.openai.com/account/api-keys" in message
    assert "[redacted]" in message


def test_upstream_stream_error_naming_the_credential_is_redacted(http, fake_openai, gateway):
    fake_openai.fail_next(503, {"error": {"message": f"overloaded for key {UPSTREAM_KEY}"}})
    response = http.post("/v1/chat/completions", json={**CHAT, "stream": True})
    assert response.status_code == 503
    assert UPSTREAM_KEY not in response.text and UPSTREAM_KEY not in gateway.output()
    assert "overloaded for key [redacted]" in response.json()["error"]["message"]


def test_redaction_keeps_messages_without_secrets_unchanged():
    from junction.upstream.redact import redact

    assert redact("model gpt-4o does not exist", ("sk-abc",)) == "model gpt-4o does not exist"
    assert redact("bad key gw-abcdef12!", ("gw-abcdef12",)) == "bad key [redacted]!"
    assert redact("short keys like 'ab' are not hunted", ("ab",)) == "short keys like 'ab' are not hunted"



# --- limits and documented ranges ---------------------------------------------------------------


@pytest.mark.parametrize(("field", "value"), [
    ("max_tokens", -1), ("max_tokens", 0), ("max_tokens", 10**26), ("max_completion_tokens", 0),
    ("n", 0), ("n", 129), ("top_p", -5), ("top_p", 1.5), ("temperature", -0.1), ("temperature", 2.5),
    ("presence_penalty", 3), ("frequency_penalty", -2.5), ("top_logprobs", 21), ("seed", 2**64),
])
def test_numeric_parameters_outside_their_documented_range_are_refused(http, fake_openai, field, value):
    response = http.post("/v1/chat/completions", json={**CHAT, field: value})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == field and "out of range" in error["message"], error
    assert fake_openai.requests == []


@pytest.mark.parametrize(("field", "value", "bounds"), [
    ("max_tokens", 10**26, "between 1 and 2147483647"), ("seed", 2**64, f"between {-(2**63)} and {2**63 - 1}"),
    ("temperature", 2.5, "between 0 and 2"), ("top_p", 1.5, "between 0 and 1"),
])
def test_a_range_refusal_states_the_bounds_exactly(http, field, value, bounds):
    error = http.post("/v1/chat/completions", json={**CHAT, field: value}).json()["error"]
    assert f"is out of range (must be {bounds})" in error["message"], error


def test_logit_bias_outside_its_range_is_refused(http, fake_openai):
    response = http.post("/v1/chat/completions", json={**CHAT, "logit_bias": {"50256": -101}})
    assert response.status_code == 400 and response.json()["error"]["param"] == "logit_bias.50256"
    assert fake_openai.requests == []


def test_range_boundaries_are_accepted(http, fake_openai):
    for fields in ({"temperature": 0, "top_p": 0, "n": 1, "max_tokens": 1},
                   {"temperature": 2, "top_p": 1, "presence_penalty": -2, "frequency_penalty": 2}):
        response = http.post("/v1/chat/completions", json={**CHAT, **fields})
        assert response.status_code == 200, response.text


def test_model_name_length_is_limited(http, fake_openai):
    response = http.post("/v1/chat/completions", json={**CHAT, "model": "openai/" + "m" * 300})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == "model" and "limits.max_model_chars" in error["message"]
    assert len(error["message"]) < 400  # the name is not echoed whole
    assert fake_openai.requests == []


def test_message_count_is_limited(http, fake_openai):
    messages = [{"role": "user", "content": "x"}] * 2049
    response = http.post("/v1/chat/completions", json={"model": "openai/gpt-4o-mini", "messages": messages})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == "messages" and "limits.max_messages" in error["message"]
    assert fake_openai.requests == []


def test_embeddings_model_name_length_is_limited(http):
    response = http.post("/v1/embeddings", json={"model": "openai/" + "m" * 300, "input": "x"})
    assert response.status_code == 400 and response.json()["error"]["param"] == "model"


@pytest.mark.parametrize(("field", "value"), [("temperature", 1.5), ("temperature", -1), ("top_p", 2),
                                              ("top_k", -1), ("max_tokens", 0)])
def test_anthropic_numeric_parameters_are_checked_against_anthropics_ranges(http, fake_openai, field, value):
    body = {"model": "openai/gpt-4o-mini", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}],
            field: value}
    response = http.post("/v1/messages", json=body)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["message"].startswith(f"{field}:")
    assert fake_openai.requests == []


@pytest.mark.parametrize("body", [
    {"model": "openai/gpt-4o-mini", "messages": [{"role": "w" * 5000, "content": "x"}]},
    {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": [{"type": "v" * 5000}]}]},
])
def test_a_clients_bad_value_is_echoed_truncated(http, body):
    response = http.post("/v1/chat/completions", json=body)
    assert response.status_code == 400
    message = response.json()["error"]["message"]
    assert len(message) < 300 and "…" in message, message
