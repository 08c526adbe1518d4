"""Bad input gets a clear 4xx in the OpenAI error shape, never a 500, and never reaches upstream."""

from __future__ import annotations

import httpx
import pytest


@pytest.fixture
def http(gateway):
    with httpx.Client(base_url=gateway.url, headers={"authorization": f"Bearer {gateway.key}"}, timeout=10) as client:
        yield client


def assert_openai_error(response: httpx.Response, status: int, *, param: str | None = None, contains: str = ""):
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["param"] == param
    assert contains in error["message"]
    assert response.headers["x-request-id"]
    return error


@pytest.mark.parametrize("body", [b"{", b"not json", b'{"model": "openai/gpt-4o", "messages": [}', b"\xff\xfe"])
def test_malformed_json(http, fake_openai, body):
    error = assert_openai_error(http.post("/v1/chat/completions", content=body), 400, contains="not valid JSON")
    assert error["code"] == "invalid_json"
    assert fake_openai.requests == []


@pytest.mark.parametrize(("body", "param", "fragment"), [
    ({"messages": [{"role": "user", "content": "x"}]}, "model", "missing required field `model`"),
    ({"model": "openai/gpt-4o"}, "messages", "missing required field `messages`"),
    ({"model": "openai/gpt-4o", "messages": []}, "messages", "at least one message"),
    ({"model": 4, "messages": [{"role": "user", "content": "x"}]}, "model", "Expected `str`, got `int`"),
    ({"model": "openai/gpt-4o", "messages": "hello"}, "messages", "Expected `array`"),
    ({"model": "openai/gpt-4o", "messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role", "wizard"),
    ({"model": "openai/gpt-4o", "messages": [{"content": "x"}]}, "messages[0].role", "missing required field"),
    ({"model": "openai/gpt-4o", "messages": [{"role": "user", "content": [{"type": "video", "x": 1}]}]},
     "messages[0].content[0].type", "video"),
    ({"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "x"}], "temperature": "hot"},
     "temperature", "Expected `float | null`, got `str`"),
    ({"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "x"}], "stream": "yes"},
     "stream", "Expected `bool | null`, got `str`"),
    ({"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "x"}],
      "response_format": {"type": "xml"}}, "response_format.type", "xml"),
])
def test_wrong_fields_are_named(http, fake_openai, body, param, fragment):
    assert_openai_error(http.post("/v1/chat/completions", json=body), 400, param=param, contains=fragment)
    assert fake_openai.requests == []


def test_top_level_must_be_an_object(http):
    assert_openai_error(http.post("/v1/chat/completions", json=[1, 2]), 400, contains="Expected `object`")


def test_huge_body_is_413(http, fake_openai):
    # The test gateway caps bodies at 64 KiB (server.max_body_bytes).
    body = {"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "x" * 70_000}]}
    response = http.post("/v1/chat/completions", json=body)
    assert_openai_error(response, 413)
    assert fake_openai.requests == []
    # with a Content-Length (refused before reading) and chunked (refused while reading): the limit named
    chunked = http.post("/v1/chat/completions", content=iter([b"x" * 16_384] * 5),
                        headers={"content-type": "application/json"})
    for refused in (response, chunked):
        assert refused.status_code == 413
        assert refused.json()["error"]["message"] == "request body: larger than server.max_body_bytes (65536 bytes)"
        assert refused.json()["error"]["code"] == "body_too_large"
        # the body was left unread: the connection closes after the answer, and says so, so the
        # client opens a new one rather than racing the close (it did, now and then, before)
        assert refused.headers.get("connection") == "close"


def test_unknown_route_and_wrong_method(http):
    assert_openai_error(http.get("/v1/nothing-here"), 404, contains="no route")
    response = http.get("/v1/chat/completions")
    assert response.status_code == 405
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_disabled_provider_is_named(tmp_path, fake_openai):
    from junction.testing.server import JunctionProcess
    from tests.conftest import openai_provider_table

    config = openai_provider_table(fake_openai, enabled=False)
    with JunctionProcess(tmp_path, config) as server:
        response = httpx.post(f"{server.url}/v1/chat/completions", headers={"authorization": f"Bearer {server.key}"},
                              json={"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "x"}]})
    error = assert_openai_error(response, 400, param="model", contains="provider 'openai' is not enabled")
    assert error["code"] == "provider_disabled"
    assert "to enable it, it is switched off in the config ([providers.openai] enabled = false)" in error["message"]
    assert "no provider is enabled" in server.output() and "export ANTHROPIC_API_KEY" in server.output()


def test_a_provider_without_its_key_says_which_variable_enables_it(http):
    error = assert_openai_error(http.post("/v1/chat/completions", json={
        "model": "anthropic/claude-haiku-4-5", "messages": [{"role": "user", "content": "x"}]}), 400, param="model")
    assert error["code"] == "provider_disabled"
    assert "to enable it, export ANTHROPIC_API_KEY, or add a [providers.anthropic] table" in error["message"]


def test_the_start_up_line_names_the_enabled_providers(gateway):
    assert "junction: providers enabled: openai" in gateway.output()


@pytest.mark.parametrize("model", ["openai/x/../../v1beta/cachedContents", "openai/gpt-4o?key=1", "openai/gpt 4o",
                                   "openai/gpt-4o#frag", "openai/%2e%2e/admin", "openai/../x", "openai/a//b"])
def test_model_ids_that_could_escape_a_url_path_are_refused(http, fake_openai, model):
    body = {"model": model, "messages": [{"role": "user", "content": "x"}]}
    error = assert_openai_error(http.post("/v1/chat/completions", json=body), 400, param="model",
                                contains="not a valid model id")
    assert error["code"] == "invalid_model"
    assert fake_openai.requests == []


def test_model_ids_of_every_provider_shape_are_accepted():
    from junction.routing.router import Router
    from tests.unit.sample_plugins import EchoAdapter, EchoConfig

    router = Router({"p": EchoAdapter(EchoConfig(), None)}, {"p"}, {})
    for model in ["gpt-4o-mini", "ft:gpt-4o-mini:org:custom:abc123", "meta-llama/llama-3-8b-instruct:free",
                  "anthropic/claude-3.5-sonnet:beta", "tunedModels/my-model-1", "claude-sonnet-4-5@20250929"]:
        assert router.resolve(f"p/{model}")[0].target.model == model
