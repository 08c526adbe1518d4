"""The OpenAPI document describes the JSON body of every main route (the handlers decode it
themselves, so Litestar alone would not), in schemas a client generator can use: a real request
validates against them and a wrong one does not."""

from __future__ import annotations

import re

import httpx
import jsonschema
import pytest

from junction.openapi import REQUEST_BODIES
from junction.testing.server import JunctionProcess


@pytest.fixture(scope="module")
def document(gateway: JunctionProcess) -> dict:
    return httpx.get(f"{gateway.url}/schema/openapi.json", timeout=20).json()


def body_schema(document: dict, method: str, path: str) -> dict:
    operation = document["paths"][path][method.lower()]
    body = operation["requestBody"]
    assert body["required"] is True
    return body["content"]["application/json"]["schema"]


def test_every_listed_route_has_its_request_body(document: dict) -> None:
    for method, path in REQUEST_BODIES:
        schema = body_schema(document, method, path)
        assert schema.get("type") == "object" and schema.get("properties"), (method, path)
        assert "$defs" not in re.sub(r"\s", "", str(schema))  # self-contained: no dangling references


@pytest.mark.parametrize(("method", "path", "good", "bad"), [
    ("POST", "/v1/chat/completions",
     {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "temperature": 0.2},
     {"model": "openai/gpt-4o-mini"}),
    ("POST", "/v1/messages",
     {"model": "anthropic/claude-haiku-4-5", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]},
     {"model": "anthropic/claude-haiku-4-5", "messages": "hi"}),
    ("POST", "/v1/embeddings", {"model": "openai/text-embedding-3-small", "input": ["a", "b"]}, {"input": "a"}),
    ("POST", "/v1/responses", {"model": "openai/gpt-4o-mini", "input": "hi"}, {"model": 3}),
    ("POST", "/api/v1/admin/keys", {"org_id": "org_1", "name": "ci", "scopes": ["chat"]}, {"scopes": ["chat"]}),
    ("POST", "/api/v1/bridges",
     {"org_id": "org_1", "slug": "greeter", "name": "Greeter", "model": "openai/gpt-4o-mini",
      "prompt": "Greet {{name}}", "variables": [{"name": "name", "required": True}]},
     {"slug": "greeter", "variables": ["name"]}),
    ("POST", "/api/v1/jobs", {"request": {"model": "m", "messages": []}, "webhook": {"url": "https://x.example"}},
     {"request": 3}),
])
def test_the_schemas_accept_a_real_body_and_refuse_a_wrong_one(document: dict, method: str, path: str,
                                                               good: dict, bad: dict) -> None:
    schema = body_schema(document, method, path)
    jsonschema.Draft202012Validator(schema).validate(good)
    assert not jsonschema.Draft202012Validator(schema).is_valid(bad)
