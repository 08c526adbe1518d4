"""API docs that work offline and describe authentication, and CORS that is off unless configured."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from junction.errors import ConfigError
from junction.settings import settings_from_mapping
from junction.testing.server import JunctionProcess
from tests.conftest import openai_provider_table

ALLOWED = "https://app.example.com"


@pytest.fixture(scope="module")
def cors_gateway(fake_openai_server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[JunctionProcess]:
    config = openai_provider_table(fake_openai_server) + f'[server.cors]\nallow_origins = ["{ALLOWED}"]\n'
    with JunctionProcess(tmp_path_factory.mktemp("cors"), config) as server:
        yield server


def test_the_docs_page_loads_every_asset_from_junction_itself(gateway: JunctionProcess) -> None:
    page = httpx.get(f"{gateway.url}/schema", timeout=10)
    assert page.status_code == 200 and "swagger" in page.text.lower()
    assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert assets and all(url.startswith("/schema/assets/") for url in assets), assets
    assert "https://" not in page.text and "http://" not in page.text
    for url in assets:
        asset = httpx.get(f"{gateway.url}{url}", timeout=10)
        assert asset.status_code == 200 and len(asset.content) > 100, url


def test_the_openapi_document_declares_bearer_and_x_api_key_authentication(gateway: JunctionProcess) -> None:
    document = httpx.get(f"{gateway.url}/schema/openapi.json", timeout=10).json()
    schemes = document["components"]["securitySchemes"]
    assert schemes["bearer"] == {**schemes["bearer"], "type": "http", "scheme": "bearer"}
    assert schemes["apiKey"] == {**schemes["apiKey"], "type": "apiKey", "name": "x-api-key", "in": "header"}
    assert {"bearer": []} in document["security"]


def test_cors_is_off_by_default(gateway: JunctionProcess) -> None:
    reply = httpx.get(f"{gateway.url}/v1/models", headers={"origin": ALLOWED,
                                                          "authorization": f"Bearer {gateway.key}"}, timeout=10)
    assert reply.status_code == 200 and "access-control-allow-origin" not in reply.headers


def test_a_preflight_from_an_allowed_origin_is_answered(cors_gateway: JunctionProcess) -> None:
    reply = httpx.options(f"{cors_gateway.url}/v1/chat/completions", timeout=10, headers={
        "origin": ALLOWED, "access-control-request-method": "POST",
        "access-control-request-headers": "authorization, content-type"})
    assert reply.status_code in (200, 204)
    assert reply.headers["access-control-allow-origin"] == ALLOWED
    assert "POST" in reply.headers["access-control-allow-methods"]
    assert "authorization" in reply.headers["access-control-allow-headers"].lower()


def test_responses_expose_the_request_id_to_allowed_origins_only(cors_gateway: JunctionProcess) -> None:
    headers = {"authorization": f"Bearer {cors_gateway.key}"}
    allowed = httpx.get(f"{cors_gateway.url}/v1/models", headers={**headers, "origin": ALLOWED}, timeout=10)
    assert allowed.headers["access-control-allow-origin"] == ALLOWED
    assert "x-request-id" in allowed.headers["access-control-expose-headers"].lower()
    other = httpx.get(f"{cors_gateway.url}/v1/models", headers={**headers, "origin": "https://evil.example"},
                      timeout=10)
    assert "access-control-allow-origin" not in other.headers


def test_an_origin_with_a_path_is_a_config_error_naming_the_key() -> None:
    with pytest.raises(ConfigError, match=r"server\.cors\.allow_origins: 'https://a\.example/app'"):
        settings_from_mapping({"server": {"cors": {"allow_origins": ["https://a.example/app"]}}})
