"""Small helpers shared by the domain controllers: body decoding and authentication."""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec
from litestar import Request

from app.errors import InvalidRequest
from app.formats.openai import validation_error
from app.pipeline import Gateway
from app.plugins.protocols import Principal

T = TypeVar("T")


def decode_body(body: bytes, type_: type[T]) -> T:
    """Decode a JSON body into ``type_``; a bad field is a 400 naming it."""
    if not body.strip():
        raise InvalidRequest("request body: expected a JSON object", code="invalid_json")
    try:
        return msgspec.json.decode(body, type=type_)
    except msgspec.MsgspecError as error:
        raise validation_error(error) from None


async def caller(gateway: Gateway, request: Request[Any, Any, Any], scope: str) -> Principal:
    """Authenticate the request and require ``scope``."""
    principal = await gateway.authenticate(request.headers)
    gateway.authorize(principal, scope)
    return principal
