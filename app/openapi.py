"""The OpenAPI document at ``/schema/openapi.json`` and its UI at ``/schema``, served offline.

The UI is Swagger UI from the package's own files (``app/static/swagger-ui``, see SOURCE.md there):
no CDN, so the docs work on a machine without internet. The document declares how callers
authenticate: ``Authorization: Bearer <key>`` or ``x-api-key: <key>``, and the JSON body of each
route that takes one: handlers read their raw body themselves (one guarded read, then msgspec), so
Litestar cannot see the type; :data:`REQUEST_BODIES` names it, and its JSON Schema comes from
msgspec.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from litestar import Router
from litestar.datastructures import CacheControlHeader
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.openapi.spec import Components, OpenAPIMediaType, Operation, RequestBody, SecurityScheme
from litestar.static_files import create_static_files_router

SCHEMA_PATH = "/schema"
ASSETS_PATH = f"{SCHEMA_PATH}/assets"
_ASSETS = Path(__file__).parent / "static" / "swagger-ui"

SECURITY_SCHEMES = {
    "bearer": SecurityScheme(type="http", scheme="bearer",
                             description="A Junction API key (sk-jn-…), the master key, or a JWT"),
    "apiKey": SecurityScheme(type="apiKey", name="x-api-key", security_scheme_in="header",
                             description="The same credential, Anthropic-style"),
}


def openapi_config(version: str) -> OpenAPIConfig:
    ui = SwaggerRenderPlugin(path=["/", "/swagger"], js_url=f"{ASSETS_PATH}/swagger-ui-bundle.js",
                             css_url=f"{ASSETS_PATH}/swagger-ui.css",
                             standalone_preset_js_url=f"{ASSETS_PATH}/swagger-ui-standalone-preset.js",
                             favicon=f'<link rel="icon" type="image/png" href="{ASSETS_PATH}/favicon-32x32.png">')
    return OpenAPIConfig(title="Junction", version=version, path=SCHEMA_PATH, render_plugins=[ui],
                         components=Components(security_schemes=SECURITY_SCHEMES),
                         security=[{"bearer": []}, {"apiKey": []}])


def docs_assets() -> Router:
    """The UI's scripts and styles, cached by browsers for a day."""
    return create_static_files_router(path=ASSETS_PATH, directories=[_ASSETS], name="docs-assets",
                                      cache_control=CacheControlHeader(max_age=86400, public=True))


#: The body type each route decodes, as ``module:Struct`` relative to this package.
REQUEST_BODIES: dict[tuple[str, str], str] = {
    ("POST", "/v1/chat/completions"): ".schemas.chat:ChatRequest",
    ("POST", "/v1/messages"): ".formats.anthropic.wire:MessagesRequest",
    ("POST", "/v1/embeddings"): ".schemas.embeddings:EmbeddingRequest",
    ("POST", "/v1/responses"): ".formats.responses.wire:ResponsesRequest",
    ("POST", "/v1/batches"): ".domain.batches.openai:NewBatch",
    ("POST", "/api/v1/jobs"): ".domain.jobs.service:JobRequest",
    ("POST", "/api/v1/batches"): ".domain.batches.controllers:BatchRequest",
    ("PUT", "/api/v1/admin/orgs/{org_id}/webhook-secret"): ".domain.jobs.controllers:WebhookSecretBody",
    ("POST", "/api/v1/admin/orgs"): ".domain.orgs.controllers:NewOrgBody",
    ("PATCH", "/api/v1/admin/orgs/{org_id}"): ".stores.documents.protocol:OrgPatch",
    ("POST", "/api/v1/admin/keys"): ".domain.keys.schemas:NewKeyBody",
    ("PUT", "/api/v1/admin/orgs/{org_id}/credentials/{provider}"):
        ".domain.credentials.controllers:CredentialBody",
    ("POST", "/api/v1/bridges"): ".domain.bridges.controllers:NewBridgeBody",
    ("PATCH", "/api/v1/bridges/{bridge_id}"): ".stores.documents.bridges:BridgePatch",
    ("POST", "/api/v1/bridges/{bridge_id}/chat"): ".domain.bridges.chat:BridgeChatBody",
}

_PATH_PARAMETER_TYPE = re.compile(r"\{(\w+):\w+\}")


def describe_request_bodies(handlers: Iterable[Any]) -> None:
    """Give each handler of :data:`REQUEST_BODIES` an operation class declaring its JSON body."""
    for handler in handlers:
        for path in getattr(handler, "paths", ()):
            plain = _PATH_PARAMETER_TYPE.sub(r"{\1}", path)
            for method in getattr(handler, "http_methods", ()):
                target = REQUEST_BODIES.get((str(method), plain))
                if target is not None:
                    handler.operation_class = _operation_with_body(target)


def _operation_with_body(target: str) -> type[Operation]:
    module, _, name = target.partition(":")
    body_type = getattr(importlib.import_module(module, __package__), name)

    @dataclass
    class WithBody(Operation):
        def __post_init__(self) -> None:
            if self.request_body is None:
                schema: Any = json_schema(body_type)  # a plain dict: Litestar serialises it as it is
                self.request_body = RequestBody(content={"application/json": OpenAPIMediaType(schema=schema)},
                                                required=True)

    return WithBody


def json_schema(body_type: Any) -> dict[str, Any]:
    """msgspec's JSON Schema of ``body_type`` with its ``$defs`` inlined (an OpenAPI document's
    ``#/$defs`` would point at the document's root, not at this schema)."""
    import msgspec

    schema = msgspec.json.schema(body_type)
    definitions = schema.pop("$defs", {})

    def inline(node: Any, expanding: frozenset[str]) -> Any:
        if isinstance(node, dict):
            reference = node.get("$ref")
            if isinstance(reference, str) and reference.startswith("#/$defs/"):
                name = reference.removeprefix("#/$defs/")
                if name in expanding:  # a recursive type: stop at "any object"
                    return {"type": "object", "title": name}
                return inline(definitions[name], expanding | {name})
            # A discriminator's mapping names $defs entries that no longer exist once inlined; each
            # variant's own `type` enum still tells them apart.
            return {key: inline(value, expanding) for key, value in node.items() if key != "discriminator"}
        if isinstance(node, list):
            return [inline(item, expanding) for item in node]
        return node

    return inline(schema, frozenset())
