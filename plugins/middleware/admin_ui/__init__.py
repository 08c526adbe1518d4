"""The ``admin-ui`` plugin: the admin console at ``/ui`` (server-rendered pages, see README
"Admin console"). On by default; ``[middleware.admin-ui] enabled = false`` switches it off.

It adds routes only (no pipeline stage). Its pages act through the same domain services and the
same org scoping as the admin API; see web.py for the session, CSRF and header rules.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from litestar import Request, Response, Router
from litestar.datastructures import CacheControlHeader
from litestar.static_files import create_static_files_router

from junction.errors import JunctionError
from junction.middleware.admin_ui.bridges import bridge_routes
from junction.middleware.admin_ui.config import AdminUiConfig
from junction.middleware.admin_ui.insights import insight_routes
from junction.middleware.admin_ui.sessions import MemorySessions, RedisSessions
from junction.middleware.admin_ui.signin import signin_routes
from junction.middleware.admin_ui.tenancy import tenancy_routes
from junction.middleware.admin_ui.web import (
    BASE,
    SECURITY_HEADERS,
    Console,
    CsrfRefused,
    SignInRequired,
    Ui,
    login_redirect,
)
from junction.plugins import MiddlewareSpec, PluginContext, RouteContext, hookimpl

STATIC = Path(__file__).parent / "static"
log = logging.getLogger("junction.admin_ui")


def create_console(config: AdminUiConfig, context: PluginContext) -> Console:
    sessions = RedisSessions(context.redis) if context.redis is not None else MemorySessions()
    if context.redis is None and (context.settings.server.workers or 1) > 1:
        log.warning("admin-ui: console sessions are kept per worker (no Redis cache store), so a "
                    "sign-in holds only on the worker that served it; set [stores] cache to a redis:// URL")
    return Console(config=config, sessions=sessions)


@hookimpl
def register_middleware(register):
    register(MiddlewareSpec(name="admin-ui", config_type=AdminUiConfig, create=create_console,
                            routes_only=True))


@hookimpl
def register_routes(register, context: RouteContext):
    console = context.components.get("admin-ui")
    if not isinstance(console, Console) or context.runtime is None:
        return
    ui = Ui(console=console, runtime=context.runtime)

    def sign_in(_: Request[Any, Any, Any], __: SignInRequired) -> Response[Any]:
        return login_redirect()

    def refused(request: Request[Any, Any, Any], _: CsrfRefused) -> Response[Any]:
        return console.render("error.html", 403, title="Refused",
                              message="This form was not sent from a page of this session (no valid CSRF "
                                      "token). Reload the page and try again.")

    def failed(request: Request[Any, Any, Any], error: JunctionError) -> Response[Any]:
        return console.render("error.html", error.status, title=f"Error {error.status}", message=error.message)

    def secured(response: Response[Any]) -> Response[Any]:
        for name, value in SECURITY_HEADERS.items():
            response.headers[name] = value
        return response

    register(Router(
        path=BASE,
        route_handlers=[*signin_routes(ui), *insight_routes(ui), *tenancy_routes(ui), *bridge_routes(ui)],
        exception_handlers={SignInRequired: sign_in, CsrfRefused: refused, JunctionError: failed},
        after_request=secured,  # type: ignore[arg-type]
        include_in_schema=False,
    ))
    register(create_static_files_router(path=f"{BASE}/static", directories=[STATIC], name="admin-ui-static",
                                        cache_control=CacheControlHeader(max_age=3600, public=True),
                                        include_in_schema=False))
