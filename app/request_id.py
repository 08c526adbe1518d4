"""Gives every response an ``x-request-id``: the client's own when it sent one, else a new one."""

from __future__ import annotations

import re
import secrets

from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Message, Receive, Scope, Send

REQUEST_ID_HEADER = b"x-request-id"
#: Where the id is kept in the ASGI scope for handlers (``request.scope[SCOPE_KEY]``).
SCOPE_KEY = "junction.request_id"
_ACCEPTABLE = re.compile(rb"[A-Za-z0-9._:-]{1,128}")


def incoming_request_id(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == REQUEST_ID_HEADER and _ACCEPTABLE.fullmatch(value):
            return value.decode()
    return secrets.token_hex(12)


class RequestIdMiddleware(ASGIMiddleware):
    scopes = (ScopeType.HTTP,)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        request_id = incoming_request_id(scope)
        scope[SCOPE_KEY] = request_id  # type: ignore[literal-required]
        header = (REQUEST_ID_HEADER, request_id.encode())

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), header]  # type: ignore[typeddict-item]
            await send(message)

        await next_app(scope, receive, send_with_id)
