"""Reading credentials off a request, shared by every authenticator."""

from __future__ import annotations

from collections.abc import Mapping


def presented_key(headers: Mapping[str, str]) -> str | None:
    """The API key a client presented: ``Authorization: Bearer <key>`` (OpenAI SDKs) or
    ``x-api-key: <key>`` (Anthropic SDKs); ``None`` when there is neither."""
    authorization = headers.get("authorization")
    if authorization:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    return headers.get("x-api-key") or None
