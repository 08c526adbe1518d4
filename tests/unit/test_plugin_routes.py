"""``register_routes`` and ``register_asgi_middleware``: a plugin adds routes that reach its own
object and the gateway's authentication, and middleware around the whole app; a route that
would shadow another is refused at start-up."""

from __future__ import annotations

from importlib.metadata import EntryPoint

import pytest
from litestar import Litestar, get
from litestar.testing import TestClient

from junction.asgi import _refuse_taken_paths
from junction.errors import EXCEPTION_HANDLERS, AuthenticationFailed, ConfigError
from junction.plugins import Principal, RouteContext
from junction.plugins.manager import collect_routes
from junction.plugins.protocols import PluginContext
from junction.settings import Settings
from tests.unit.test_plugin_manager import load

SAMPLE = EntryPoint("routes-sample", "tests.unit.sample_plugins:routes_sample", "junction.middleware")


async def only_bearer_x(headers) -> Principal:
    if headers.get("authorization") != "Bearer x":
        raise AuthenticationFailed("invalid API key", code="invalid_api_key")
    return Principal(id="key:x", kind="key", scopes=frozenset({"admin"}))


#: Built-in plugins that add routes of their own, switched off to count only the sample's.
OTHERS_OFF = {"metrics": {"enabled": False}}


def test_a_plugins_routes_and_middleware_are_served():
    loaded = load({"auth": {"master_key": "k"}, "middleware": OTHERS_OFF}, middleware=[SAMPLE])
    context = RouteContext(authenticate=only_bearer_x, components=loaded.by_name,
                           services=PluginContext(settings=Settings()))
    routes, middleware = collect_routes(loaded, context)
    assert len(routes) == 1 and len(middleware) == 1
    app = Litestar(route_handlers=routes, middleware=middleware, exception_handlers=EXCEPTION_HANDLERS)
    with TestClient(app) as client:
        answer = client.get("/sample/whoami", headers={"authorization": "Bearer x"})
        assert answer.json() == {"principal": "key:x", "component": "Counting"}
        assert answer.headers["x-sample"] == "yes"
        refused = client.get("/sample/whoami")
        assert refused.status_code == 401 and refused.json()["error"]["code"] == "invalid_api_key"


def test_a_disabled_plugin_adds_no_routes():
    loaded = load({"auth": {"master_key": "k"}, "middleware": {**OTHERS_OFF, "routes-sample": {"enabled": False}}},
                  middleware=[SAMPLE])
    context = RouteContext(authenticate=only_bearer_x, components=loaded.by_name,
                           services=PluginContext(settings=Settings()))
    assert collect_routes(loaded, context) == ([], [])


def test_a_route_that_shadows_another_is_refused():
    @get("/v1/models")
    async def ours() -> None: ...

    @get("/v1/models")
    async def theirs() -> None: ...

    with pytest.raises(ConfigError, match="GET /v1/models is already served"):
        _refuse_taken_paths([ours], [theirs])
