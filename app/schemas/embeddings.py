"""Embeddings requests and responses in Junction's unified model (the OpenAI Embeddings shape).

Providers with an embeddings endpoint translate these to and from their own wire format; see
:class:`junction.plugins.protocols.EmbeddingsAdapter`.
"""

from __future__ import annotations

import base64
import struct
from typing import Literal

import msgspec

from junction.errors import InvalidRequest


class _Model(msgspec.Struct, omit_defaults=True, kw_only=True):
    pass


class EmbeddingRequest(_Model):
    model: str
    #: One text, several texts, one token array or several token arrays. msgspec allows one
    #: array type in a union, so the item type is checked by :meth:`kind`.
    input: str | list[str | int | list[int]]
    dimensions: int | None = None
    encoding_format: Literal["float", "base64"] | None = None
    user: str | None = None
    #: Top-level fields Junction does not model, kept verbatim for OpenAI-compatible upstreams.
    extra_fields: dict[str, msgspec.Raw] | None = None

    def kind(self) -> Literal["texts", "tokens"]:
        """Whether the input is text or token ids; mixed or empty input is a 400 naming ``input``."""
        items = [self.input] if isinstance(self.input, str) else self.input
        if not items:
            raise InvalidRequest("input: must not be empty", param="input", code="invalid_value")
        if all(isinstance(item, str) for item in items):
            return "texts"
        if all(isinstance(item, int) for item in items) or all(isinstance(item, list) for item in items):
            return "tokens"
        raise InvalidRequest("input: must be a string, a list of strings, a list of token ids or a "
                             "list of token-id lists, not a mixture", param="input", code="invalid_value")

    def texts(self) -> list[str]:
        """The input as a list of texts (after :meth:`kind` said ``"texts"``)."""
        return [self.input] if isinstance(self.input, str) else [str(item) for item in self.input]


#: Names of the modelled request fields; anything else in a request body is an extra field.
EMBEDDING_REQUEST_FIELDS = frozenset(EmbeddingRequest.__struct_fields__) - {"extra_fields"}


class Embedding(msgspec.Struct, kw_only=True):
    index: int
    #: Floats, or (``encoding_format="base64"``) the little-endian float32 bytes in base64.
    embedding: list[float] | str
    object: str = "embedding"


class EmbeddingUsage(msgspec.Struct, kw_only=True):
    prompt_tokens: int = 0
    total_tokens: int = 0


class EmbeddingResponse(msgspec.Struct, kw_only=True):
    data: list[Embedding]
    model: str
    usage: EmbeddingUsage = msgspec.field(default_factory=EmbeddingUsage)
    object: str = "list"


def encode_vector(values: list[float], encoding_format: str | None) -> list[float] | str:
    """A vector as the client asked for it: floats, or base64 of little-endian float32 (what the
    OpenAI SDKs request by default and decode)."""
    if encoding_format != "base64":
        return values
    return base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode("ascii")
