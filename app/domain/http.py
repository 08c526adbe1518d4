"""Small helpers shared by the domain controllers: body decoding, field checks and authentication."""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec
from litestar import Request

from junction.domain.access import could_be_id
from junction.domain.fields import MAX_COUNT, MAX_NAME_CHARS, check_length  # noqa: F401 - used by the controllers
from junction.errors import InvalidRequest, NotFound
from junction.formats.openai import validation_error
from junction.pipeline import Gateway
from junction.plugins.protocols import Principal

T = TypeVar("T")

def decode_body(body: bytes, type_: type[T]) -> T:
    """Decode a JSON body into ``type_``; a bad field is a 400 naming it. No text may hold a NUL
    character: no store keeps one (PostgreSQL refuses it in text and in JSONB)."""
    if not body.strip():
        raise InvalidRequest("request body: expected a JSON object", code="invalid_json")
    try:
        decoded = msgspec.json.decode(body, type=type_)
    except msgspec.MsgspecError as error:
        raise validation_error(error) from None
    if b"\\u0000" in body:  # JSON can only spell a NUL character this way
        where = _nul_at(msgspec.to_builtins(decoded), "")
        if where is not None:
            raise InvalidRequest(
                f"{where}: must not contain NUL characters", param=where, code="invalid_value"
            )
    return decoded


def _nul_at(value: Any, path: str) -> str | None:
    """The path of the first text in ``value`` holding a NUL character, else ``None``."""
    if isinstance(value, str):
        return (path or "request body") if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            found = where if "\x00" in str(key) else _nul_at(item, where)
            if found is not None:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = _nul_at(item, f"{path}[{index}]")
            if found is not None:
                return found
    return None


async def caller(gateway: Gateway, request: Request[Any, Any, Any], scope: str) -> Principal:
    """Authenticate the request and require ``scope``. A path naming a record no store can hold
    (see :func:`could_be_id`, or a number out of range) is then a 404, before any store read."""
    principal = await gateway.authenticate(request.headers)
    gateway.authorize(principal, scope)
    for name, value in request.path_params.items():
        if (isinstance(value, str) and not could_be_id(value)) or (
            isinstance(value, int) and not 0 <= value <= MAX_COUNT
        ):
            raise NotFound(f"{name.removesuffix('_id')} not found", param=name, code="not_found")
    return principal
