"""Chatbot tokens: what a site's server mints for one end user (``POST /api/v1/chatbots/{slug}/token``)
and the browser then presents, alone, to talk to that one bridge.

A token is sealed, not merely signed: AES-GCM with the credentials' encryption keys (the newest
seals, any configured one opens, so rotation works as for credentials), bound to its purpose. It
carries the org, the bridge, the end user, the fixed variables and the expiry, so any node checks
it without a lookup, and the browser cannot read or change the variables it carries.
"""

from __future__ import annotations

import base64
import time

import msgspec

from junction.errors import AuthenticationFailed
from junction.security.crypto import Cipher, CredentialUnreadable, SealedBlob

PREFIX = "cbt_"
_PURPOSE = b"junction-chatbot-token"


class ChatbotClaims(msgspec.Struct, array_like=True, frozen=True):
    org_id: str
    bridge_id: str
    end_user_id: str
    variables: dict[str, str | int | float | bool | None]
    #: Unix seconds.
    expires: int


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(ChatbotClaims)


def _invalid() -> AuthenticationFailed:
    return AuthenticationFailed("invalid chatbot token", code="invalid_chatbot_token")


class ChatbotTokens:
    def __init__(self, cipher: Cipher) -> None:
        self._cipher = cipher

    def mint(self, claims: ChatbotClaims) -> str:
        sealed = self._cipher.seal(_encoder.encode(claims), _PURPOSE)
        key_id = sealed.key_id.encode()
        raw = bytes([len(key_id)]) + key_id + sealed.blob
        return PREFIX + base64.urlsafe_b64encode(raw).decode().rstrip("=")

    def read(self, token: str) -> ChatbotClaims:
        """The token's claims; 401 for a token that is malformed, altered, or expired."""
        if not token.startswith(PREFIX) or len(token) > 16_384:
            raise _invalid()
        body = token[len(PREFIX):]
        try:
            raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
            length = raw[0]
            sealed = SealedBlob(key_id=raw[1:1 + length].decode(), blob=raw[1 + length:])
            claims = _decoder.decode(self._cipher.open(sealed, _PURPOSE))
        except (ValueError, IndexError, UnicodeDecodeError, CredentialUnreadable, msgspec.DecodeError):
            raise _invalid() from None
        if claims.expires <= time.time():
            raise AuthenticationFailed("the chatbot token expired; get a new one from the site",
                                       code="chatbot_token_expired")
        return claims
