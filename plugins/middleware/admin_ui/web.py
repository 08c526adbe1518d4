"""What every console page shares: the session guard (sign-in required, the session's principal
still valid, CSRF on every mutation), the security headers, HTML rendering and HTML error pages.

Pages act as the signed-in principal through the same access rules as the admin API
(:mod:`junction.domain.access`): an org admin's session reaches its own org only, and another org's
record is "not found", exactly as the API answers.
"""

from __future__ import annotations

import hmac
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from litestar import Request, Response
from litestar.datastructures import Cookie
from litestar.response import Redirect

from junction.domain.access import could_be_id, is_unconfined
from junction.errors import NotFound
from junction.middleware.admin_ui.config import AdminUiConfig
from junction.middleware.admin_ui.sessions import Session, SessionStore, digest_of, new_token
from junction.plugins.protocols import Principal

if TYPE_CHECKING:
    import jinja2

BASE = "/ui"
SESSION_COOKIE = "junction_ui"
#: Before sign-in: the double-submit token the login form must echo.
LOGIN_COOKIE = "junction_ui_login"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
#: No inline script or style, nothing from another origin, no framing, forms post only here.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "font-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}
#: What a page says after a mutation redirected to it (``?notice=<code>``): fixed texts only, so a
#: link cannot make the console display words of someone else's choosing.
NOTICES = {
    "revoked": "The key was revoked; calls with it are refused from now on.",
    "saved": "Saved.",
    "created": "Created.",
    "deleted": "Deleted.",
    "credential-set": "The credential was stored (encrypted). It is never shown again.",
    "credential-deleted": "The credential was deleted; calls fall back to the server-wide key.",
    "version-created": "The draft was saved as a new version.",
    "published": "Published: calls now use this version.",
}
TEMPLATES = Path(__file__).parent / "templates"


class SignInRequired(Exception):
    """No valid session: the browser is sent to the sign-in page."""


class CsrfRefused(Exception):
    """A mutation without this session's CSRF token."""


@dataclass(slots=True)
class Console:
    """The plugin's object: its config, the session store and the templates."""

    config: AdminUiConfig
    sessions: SessionStore
    _templates: jinja2.Environment | None = field(default=None, init=False)

    @property
    def templates(self) -> jinja2.Environment:
        """Built (and Jinja imported) when the console first renders a page: every worker has
        this plugin, few ever serve a page of it."""
        if self._templates is None:
            import jinja2

            self._templates = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                                                 undefined=jinja2.StrictUndefined, trim_blocks=True,
                                                 lstrip_blocks=True)
            self._templates.globals["base"] = BASE
        return self._templates

    def render(self, name: str, http_status: int = 200, **values: Any) -> Response[str]:
        html = self.templates.get_template(name).render(**values)
        # Set here too (not only by the router's after_request): error pages come from exception
        # handlers, which after_request does not see.
        return Response(html, status_code=http_status, media_type="text/html", headers=SECURITY_HEADERS)

    # --- sessions ---------------------------------------------------------------------------

    async def sign_in(self, principal: Principal) -> tuple[str, Session]:
        token = new_token()
        ttl = self.config.session_ttl_seconds
        expires = time.time() + ttl
        if principal.expires_at is not None:  # never outlive the credential it was opened with
            expires = min(expires, principal.expires_at.timestamp())
            ttl = max(1, int(expires - time.time()))
        session = Session(principal=principal, csrf_token=new_token(), expires_at=expires)
        await self.sessions.put(digest_of(token), session, ttl)
        return token, session

    async def sign_out(self, request: Request[Any, Any, Any]) -> None:
        token = request.cookies.get(SESSION_COOKIE)
        if token:
            await self.sessions.delete(digest_of(token))

    def cookie(self, request: Request[Any, Any, Any], name: str, value: str, max_age: int | None) -> Cookie:
        secure = self.config.secure_cookie
        if secure is None:
            secure = request.url.scheme == "https"
        return Cookie(key=name, value=value, path=BASE, httponly=True, samesite="strict", secure=secure,
                      max_age=max_age)


def login_redirect() -> Redirect:
    return Redirect(f"{BASE}/login", status_code=303)


def check_csrf(expected: str, submitted: str | None) -> None:
    if not submitted or not hmac.compare_digest(expected.encode(), submitted.encode()):
        raise CsrfRefused


async def still_valid(principal: Principal, documents: Any) -> bool:
    """A key's session ends when the key is revoked, expires or loses the admin scope."""
    if principal.kind != "key" or principal.org_id is None:
        return True
    key_id = principal.id.removeprefix("key:")
    try:
        record = await documents.keys.get(principal.org_id, key_id)
    except NotFound:
        return False
    return record.is_active(datetime.now(UTC)) and "admin" in record.scopes


def check_path_ids(request: Request[Any, Any, Any]) -> None:
    """As the admin API: a path naming a record no store can hold is a 404 before any read."""
    for name, value in request.path_params.items():
        if isinstance(value, str) and not could_be_id(value):
            raise NotFound(f"{name.removesuffix('_id')} not found", code="not_found")


#: Rows a listing shows at once (``?page=N`` for the rest).
PAGE_SIZE = 100


@dataclass(frozen=True, slots=True)
class Paging:
    number: int
    pages: int


def paged(items: list[Any], request: Request[Any, Any, Any]) -> tuple[list[Any], Paging]:
    """One page of a listing the store returns whole (keys, bridges): the page stays small however
    many records an org has."""
    pages = max(1, -(-len(items) // PAGE_SIZE))
    raw = request.query_params.get("page", "1")
    number = min(max(int(raw), 1), pages) if raw.isdigit() else 1
    return items[(number - 1) * PAGE_SIZE:number * PAGE_SIZE], Paging(number, pages)


def page_url(path: str, **query: Any) -> str:
    params = {key: value for key, value in query.items() if value not in (None, "")}
    return f"{BASE}{path}" + (f"?{urlencode(params)}" if params else "")


def who(principal: Principal) -> str:
    if is_unconfined(principal):
        return "master key"
    return f"{principal.id} (org {principal.org_id})"


@dataclass(slots=True)
class Ui:
    """What the pages use: the console and the process's services (from the Runtime)."""

    console: Console
    runtime: Any

    @property
    def gateway(self) -> Any:
        return self.runtime.gateway

    @property
    def documents(self) -> Any:
        return self.runtime.documents

    async def session(self, request: Request[Any, Any, Any]) -> Session:
        """The request's live session, else SignInRequired. The principal is checked again on
        every page: a revoked admin key ends its sessions at once."""
        token = request.cookies.get(SESSION_COOKIE)
        session = await self.console.sessions.get(digest_of(token)) if token else None
        if session is None:
            raise SignInRequired
        if not await still_valid(session.principal, self.documents):
            await self.console.sessions.delete(digest_of(token or ""))
            raise SignInRequired
        self.gateway.authorize(session.principal, "admin")
        check_path_ids(request)
        return session

    async def mutation(self, request: Request[Any, Any, Any]) -> tuple[Session, dict[str, str]]:
        """A form post's session and fields, once its ``csrf_token`` matched the session's."""
        session = await self.session(request)
        form = await request.form()
        fields = {key: value for key, value in form.items() if isinstance(value, str)}
        check_csrf(session.csrf_token, fields.pop(CSRF_FIELD, None))
        return session, fields

    def page(self, name: str, request: Request[Any, Any, Any], session: Session, http_status: int = 200,
             **values: Any) -> Response[str]:
        return self.console.render(name, http_status, csrf_token=session.csrf_token, who=who(session.principal),
                                   unconfined=is_unconfined(session.principal), path=request.url.path,
                                   notice=NOTICES.get(request.query_params.get("notice", "")), **values)
