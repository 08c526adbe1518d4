"""Secrets out of upstream error text: the credential a request was sent with, and anything shaped
like a provider key, replaced before the text reaches a client or the log.

Several providers quote the key they were sent in their 401 messages ("Incorrect API key provided:
sk-..."); relaying that would show an org's credential (or the server-wide one) to any caller.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

REDACTED = "[redacted]"
#: Shorter values are not hunted for: replacing "ab" everywhere would garble the message.
MIN_SECRET_CHARS = 8
#: Request headers that carry a provider credential (``authorization`` after its scheme).
CREDENTIAL_HEADERS = frozenset({"authorization", "x-api-key", "x-goog-api-key", "api-key",
                                "proxy-authorization"})
#: OpenAI-style (``sk-...``, ``sk-proj-...``, ``sk-ant-...``) and Google (``AIza...``) keys.
_KEY_SHAPES = re.compile(r"\b(?:sk-[A-Za-z0-9_\-]{16,}|AIza[0-9A-Za-z_\-]{30,})")


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """``text`` with every secret of ``secrets`` and every key-shaped token replaced."""
    for secret in secrets:
        if secret and len(secret) >= MIN_SECRET_CHARS and secret in text:
            text = text.replace(secret, REDACTED)
    return _KEY_SHAPES.sub(REDACTED, text)


def header_secrets(headers: Mapping[str, str]) -> list[str]:
    """The credentials in a request's headers: each value of a credential header, and the part
    after its scheme (``Bearer <key>``)."""
    found: list[str] = []
    for name, value in headers.items():
        if name.lower() in CREDENTIAL_HEADERS and value:
            found.append(value)
            scheme, _, rest = value.partition(" ")
            if rest and scheme.isalpha():
                found.append(rest.strip())
    return found
