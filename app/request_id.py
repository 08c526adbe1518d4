"""Gives every response an ``x-request-id``: the client's own when it sent an acceptable one,
else a new one. Installed as Litestar's ``before_send`` hook, so it also covers responses that
never reach a route handler (unknown routes, wrong methods)."""

from __future__ import annotations

import re
import secrets
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # types only: importing this module (junction.logs, so every command) skips Litestar
    from litestar.types import Message, Scope

REQUEST_ID_HEADER = b"x-request-id"
#: Where the id is kept in the ASGI scope once computed.
SCOPE_KEY = "junction.request_id"
_ACCEPTABLE = re.compile(rb"[A-Za-z0-9._:-]{1,128}")


def request_id(scope: Scope) -> str:
    """This request's id, computed once per request."""
    known = scope.get(SCOPE_KEY)  # type: ignore[call-overload]
    if known is not None:
        return known
    value = None
    for name, raw in scope["headers"]:
        if name == REQUEST_ID_HEADER and _ACCEPTABLE.fullmatch(raw):
            value = raw.decode()
            break
    if value is None:
        value = secrets.token_hex(12)
    scope[SCOPE_KEY] = value  # type: ignore[literal-required]
    return value


async def add_request_id_header(message: Message, scope: Scope) -> None:
    if message["type"] == "http.response.start":
        message["headers"] = [*message.get("headers", ()), (REQUEST_ID_HEADER, request_id(scope).encode())]  # type: ignore[typeddict-item]
