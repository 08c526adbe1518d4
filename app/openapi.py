"""The OpenAPI document at ``/schema/openapi.json`` and its UI at ``/schema``, served offline.

The UI is Swagger UI from the package's own files (``app/static/swagger-ui``, see SOURCE.md there):
no CDN, so the docs work on a machine without internet. The document declares how callers
authenticate: ``Authorization: Bearer <key>`` or ``x-api-key: <key>``.
"""

from __future__ import annotations

from pathlib import Path

from litestar import Router
from litestar.datastructures import CacheControlHeader
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme
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
