"""JSON bodies on their way to and from an upstream: unmodelled fields spliced into an encoded
request, and an upstream's reply decoded with a clear error when it is not what its API promises."""

from __future__ import annotations

from collections.abc import Container, Mapping
from typing import Any, TypeVar

import msgspec

from junction.errors import InvalidRequest, UpstreamError

T = TypeVar("T")

_encoder = msgspec.json.Encoder()


def splice_fields(body: bytes, fields: Mapping[str, msgspec.Raw] | None) -> bytes:
    """``body`` (an encoded JSON object) with ``fields`` added as top-level members, verbatim.

    Splicing bytes rather than re-encoding a merged dict keeps the modelled part a single msgspec
    encode, and leaves the client's own values (numbers, nesting) exactly as it sent them.
    """
    if not fields:
        return body
    extra = _encoder.encode(fields)
    if body == b"{}":
        return extra
    return body[:-1] + b"," + extra[1:]


def option_fields(provider_options: Mapping[str, Mapping[str, Any]] | None, provider: str,
                  modelled: Container[str]) -> dict[str, msgspec.Raw]:
    """``provider``'s own entry of a request's ``provider_options``, as fields to splice into its
    body. A field the body already gets from the unified request is refused, naming it, rather than
    sent twice with two values."""
    options = provider_options.get(provider) if provider_options else None
    if not options:
        return {}
    fields = {}
    for name, value in options.items():
        if name in modelled:
            param = f"provider_options.{provider}.{name}"
            raise InvalidRequest(f"{param}: set the request's own field instead", param=param,
                                 code="invalid_value")
        fields[name] = msgspec.Raw(_encoder.encode(value))
    return fields


def decode_upstream(decoder: msgspec.json.Decoder[T], body: bytes | str, provider: str, what: str) -> T:
    """``body`` decoded; an upstream reply we cannot read is a 502 naming the provider and ``what``
    it sent (e.g. "a response", "a stream chunk")."""
    try:
        return decoder.decode(body)
    except msgspec.MsgspecError as error:
        raise UpstreamError(f"{provider} sent {what} we could not read: {error}",
                            code="upstream_protocol_error") from None
