"""The OpenAI Embeddings wire format, both directions: the ``/v1/embeddings`` ingress
(client ⇄ unified) and OpenAI-compatible embeddings upstreams (unified ⇄ upstream)."""

from __future__ import annotations

import msgspec

from junction.errors import InvalidRequest
from junction.formats.json_body import decode_upstream, splice_fields
from junction.formats.openai import validation_error
from junction.schemas.embeddings import EMBEDDING_REQUEST_FIELDS, EmbeddingRequest, EmbeddingResponse

_encoder = msgspec.json.Encoder()
_request_decoder = msgspec.json.Decoder(EmbeddingRequest)
_fields_decoder = msgspec.json.Decoder(dict[str, msgspec.Raw])
_response_decoder = msgspec.json.Decoder(EmbeddingResponse)


def decode_embedding_request(body: bytes) -> EmbeddingRequest:
    """A client's request; unknown top-level fields are kept verbatim in ``extra_fields``."""
    try:
        fields = _fields_decoder.decode(body)
        request = _request_decoder.decode(body)
    except msgspec.MsgspecError as error:
        raise validation_error(error) from None
    request.kind()  # rejects empty and mixed input before any upstream sees it
    if request.dimensions is not None and request.dimensions < 1:
        raise InvalidRequest("dimensions: must be at least 1", param="dimensions", code="invalid_value")
    extra = {k: v for k, v in fields.items() if k not in EMBEDDING_REQUEST_FIELDS}
    request.extra_fields = extra or None
    return request


def encode_embedding_response(response: EmbeddingResponse) -> bytes:
    return _encoder.encode(response)


def encode_embedding_request(request: EmbeddingRequest, model: str) -> bytes:
    """The body for an OpenAI-compatible upstream: the upstream model, extra fields spliced in."""
    body = _encoder.encode(msgspec.structs.replace(request, model=model, extra_fields=None))
    return splice_fields(body, request.extra_fields)


def decode_embedding_response(body: bytes, provider: str) -> EmbeddingResponse:
    return decode_upstream(_response_decoder, body, provider, "embeddings")
