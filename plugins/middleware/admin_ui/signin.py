"""``GET/POST /ui/login`` (form field ``key``: the master key or an ``admin``-scoped key) and
``POST /ui/logout``. The key is exchanged for a session cookie and kept nowhere: not in the
session, the page or the log."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get, post
from litestar.handlers import HTTPRouteHandler
from litestar.response import Redirect

from junction.errors import AuthenticationFailed, PermissionDenied
from junction.middleware.admin_ui.sessions import new_token
from junction.middleware.admin_ui.web import (
    BASE,
    CSRF_FIELD,
    LOGIN_COOKIE,
    SESSION_COOKIE,
    SignInRequired,
    Ui,
    check_csrf,
    login_redirect,
)
from junction.plugins.stages import require_scope


def signin_routes(ui: Ui) -> list[HTTPRouteHandler]:
    console = ui.console

    def login_page(request: Request[Any, Any, Any], error: str | None = None, status: int = 200) -> Response[str]:
        token = new_token()
        response = console.render("login.html", status, csrf_token=token, error=error)
        response.cookies.append(console.cookie(request, LOGIN_COOKIE, token, max_age=3600))
        return response

    @get("/login", summary="Console sign-in page", include_in_schema=False)
    async def login_form(request: Request[Any, Any, Any]) -> Response[Any]:
        try:
            await ui.session(request)
        except SignInRequired:
            return login_page(request)
        return Redirect(BASE, status_code=303)

    @post("/login", summary="Console sign-in", include_in_schema=False, status_code=303)
    async def login(request: Request[Any, Any, Any]) -> Response[Any]:
        form = await request.form()
        check_csrf(request.cookies.get(LOGIN_COOKIE) or "", _text(form.get(CSRF_FIELD)))
        key = _text(form.get("key")).strip()
        if not key:
            return login_page(request, "Enter the master key or an admin key.", 400)
        try:
            principal = await ui.gateway.authenticate({"authorization": f"Bearer {key}"})
            require_scope(principal, "admin")
        except AuthenticationFailed:
            return login_page(request, "That key is not valid.", 401)
        except PermissionDenied:
            return login_page(request, "That key has no admin scope.", 403)
        token, _ = await console.sign_in(principal)
        response: Response[Any] = Redirect(BASE, status_code=303)
        response.cookies.append(console.cookie(request, SESSION_COOKIE, token, console.config.session_ttl_seconds))
        response.cookies.append(console.cookie(request, LOGIN_COOKIE, "", max_age=0))
        return response

    @post("/logout", summary="Console sign-out", include_in_schema=False, status_code=303)
    async def logout(request: Request[Any, Any, Any]) -> Response[Any]:
        await ui.mutation(request)
        await console.sign_out(request)
        response: Response[Any] = login_redirect()
        response.cookies.append(console.cookie(request, SESSION_COOKIE, "", max_age=0))
        return response

    return [login_form, login, logout]


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""
