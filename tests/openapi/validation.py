"""Validation of Junction's OpenAI-compatible answers against OpenAI's published OpenAPI document.

``openai_schemas.json`` holds the component schemas the answers need (and everything they refer
to), extracted unchanged from openai/openai-openapi ``openapi.json``; its header names the commit
and the document's version. :class:`SpecChecker` picks the schema for a route and a status and
returns what is wrong with a body, or an SSE event, or nothing.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

SCHEMAS_PATH = Path(__file__).with_name("openai_schemas.json")
_URI = "urn:openai-openapi"

#: (method, path pattern) → the schema of a 2xx JSON answer and of each SSE event's data.
ROUTES: list[tuple[str, re.Pattern[str], str, str | None]] = [
    (
        "POST",
        re.compile(r"/v1/chat/completions"),
        "CreateChatCompletionResponse",
        "CreateChatCompletionStreamResponse",
    ),
    ("GET", re.compile(r"/v1/models"), "ListModelsResponse", None),
    ("GET", re.compile(r"/v1/models/.+"), "Model", None),
    ("POST", re.compile(r"/v1/embeddings"), "CreateEmbeddingResponse", None),
    ("POST", re.compile(r"/v1/responses"), "Response", "ResponseStreamEvent"),
    ("GET", re.compile(r"/v1/responses/[^/]+"), "Response", None),
    ("GET", re.compile(r"/v1/responses/[^/]+/input_items"), "ResponseItemList", None),
]
#: OpenAI-shaped routes whose errors must be OpenAI error bodies.
ERROR_ROUTES = re.compile(r"/v1/(chat/completions|models(/.*)?|embeddings|responses(/.*)?)")


class SpecChecker:
    def __init__(self) -> None:
        document = _with_nullable(json.loads(SCHEMAS_PATH.read_text(encoding="utf-8")))
        self._schemas: dict[str, Any] = document["components"]["schemas"]
        resource = Resource.from_contents(
            {"components": document["components"]}, default_specification=DRAFT202012
        )
        self._registry = Registry().with_resource(_URI, resource)
        #: Each Responses stream event's own schema, by its ``type``.
        self._events: dict[str, str] = {}
        for ref in self._schemas["ResponseStreamEvent"]["anyOf"]:
            name = ref["$ref"].rsplit("/", 1)[1]
            enum = self._schemas[name].get("properties", {}).get("type", {}).get("enum") or []
            for kind in enum:
                self._events[kind] = name

    @cache  # noqa: B019 - one checker per session
    def _validator(self, name: str) -> Draft202012Validator:
        return Draft202012Validator({"$ref": f"{_URI}#/components/schemas/{name}"}, registry=self._registry)

    def problems(self, name: str, value: Any) -> list[str]:
        errors = sorted(self._validator(name).iter_errors(value), key=lambda e: list(e.absolute_path))
        return [
            f"{name} at {'/'.join(map(str, e.absolute_path)) or '(root)'}: {_brief(e)}" for e in errors[:5]
        ]

    @staticmethod
    def route(method: str, path: str) -> tuple[str, str | None] | None:
        for route_method, pattern, body, events in ROUTES:
            if method == route_method and pattern.fullmatch(path):
                return body, events
        return None

    def check_body(self, method: str, path: str, status: int, body: bytes) -> list[str]:
        if status >= 400:
            if not ERROR_ROUTES.fullmatch(path):
                return []
            return self.problems("ErrorResponse", json.loads(body))
        route = self.route(method, path)
        if route is None or status != 200:
            return []
        value = json.loads(body)
        if route[0] == "CreateEmbeddingResponse":
            # ``encoding_format: base64`` answers carry strings, which the document does not model
            # (OpenAI's own API sends them too): the rest of the answer is still checked.
            for item in value.get("data") or ():
                if isinstance(item, dict) and isinstance(item.get("embedding"), str):
                    item["embedding"] = [0.0]
        return self.problems(route[0], value)

    def check_event(self, method: str, path: str, data: str) -> list[str]:
        route = self.route(method, path)
        if route is None or route[1] is None or data == "[DONE]":
            return []
        value = json.loads(data)
        if route[1] == "ResponseStreamEvent":
            name = self._events.get(value.get("type"))
            return (
                self.problems(name, value)
                if name
                else [f"unknown Responses event type {value.get('type')!r}"]
            )
        if "error" in value and "choices" not in value:
            return self.problems("ErrorResponse", value)
        return self.problems(route[1], value)


def _with_nullable(node: Any) -> Any:
    """The document still marks some members with OpenAPI 3.0's ``nullable: true``, which JSON
    Schema ignores; it means "or null", and is read that way here."""
    if isinstance(node, list):
        return [_with_nullable(item) for item in node]
    if not isinstance(node, dict):
        return node
    rest = {key: _with_nullable(value) for key, value in node.items() if key != "nullable"}
    if node.get("nullable") is True:
        return {"anyOf": [rest, {"type": "null"}]}
    return rest


def _brief(error: Any) -> str:
    # oneOf/anyOf failures say little at the top; the deepest cause names the missing member.
    best = error
    while best.context:
        best = min(best.context, key=lambda e: len(list(e.absolute_path)) * -1)
    text = best.message if best is not error else error.message
    return text[:300]
