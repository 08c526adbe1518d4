"""Which web pages may use a chatbot: ``chatbot.allowed_origins`` (``"*"``: any)."""

from __future__ import annotations

import re

from junction.errors import InvalidRequest
from junction.stores.documents.bridges import ChatbotSettings, ResolvedBridge

_ORIGIN = re.compile(r"^https?://[A-Za-z0-9.-]+(:\d{1,5})?$|^https?://\[[0-9A-Fa-f:.]+\](:\d{1,5})?$")


def check_chatbot(settings: ChatbotSettings | None) -> None:
    """A 400 naming the entry for an origin that is not ``scheme://host[:port]`` or ``*``."""
    for index, origin in enumerate(settings.allowed_origins if settings else ()):
        if origin != "*" and not _ORIGIN.match(origin):
            field = f"chatbot.allowed_origins[{index}]"
            raise InvalidRequest(f"{field}: an origin is scheme://host[:port] (no path), or '*'", param=field,
                                 code="invalid_origin")


def allowed(resolved: ResolvedBridge, origin: str | None) -> bool:
    """Whether a browser on ``origin`` may call the chatbot (no ``Origin``: not a browser)."""
    if origin is None:
        return True
    origins = resolved.bridge.chatbot.allowed_origins if resolved.bridge.chatbot else []
    return "*" in origins or origin in origins
