"""Gemini's error bodies (``google.rpc.Status``) → Junction's error hierarchy.

Gemini says what went wrong in ``error.status`` rather than only the HTTP code: an invalid API key
is a 400 ``INVALID_ARGUMENT`` whose details carry the reason ``API_KEY_INVALID``, and a rate limit
tells when to retry in a ``RetryInfo`` detail (``"retryDelay": "7s"``) instead of a header.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import msgspec

from junction.errors import (
    AuthenticationFailed,
    InvalidRequest,
    JunctionError,
    NotFound,
    PermissionDenied,
    RateLimited,
    UpstreamError,
    UpstreamOverloaded,
    UpstreamTimeout,
)
from junction.providers.gemini.wire import ErrorEnvelope, Status, error_decoder

_RETRY_INFO = "type.googleapis.com/google.rpc.RetryInfo"
_KEY_REASONS = frozenset({"API_KEY_INVALID", "API_KEY_EXPIRED", "API_KEY_NOT_FOUND"})


def _status_of(body: bytes) -> Status:
    try:
        decoded = error_decoder.decode(body)
    except msgspec.MsgspecError:
        text = body.decode("utf-8", "replace").strip()[:500]
        return Status(message=text or "no error message")
    envelope = decoded[0] if isinstance(decoded, list) and decoded else decoded
    if isinstance(envelope, ErrorEnvelope) and envelope.error is not None:
        return envelope.error
    return Status(message="no error message")


def _retry_after(status: Status, headers: Mapping[str, str] | None) -> str | None:
    if headers and headers.get("retry-after"):
        return headers["retry-after"]
    for detail in status.details:
        if detail.type == _RETRY_INFO and detail.retry_delay and detail.retry_delay.endswith("s"):
            try:
                return str(max(1, math.ceil(float(detail.retry_delay[:-1]))))
            except ValueError:
                return None
    return None


def error_from_status(http_status: int, status: Status, headers: Mapping[str, str] | None) -> JunctionError:
    text = f"gemini: {status.message}"
    code = status.status
    reasons = {detail.reason for detail in status.details if detail.reason}
    if http_status == 401 or code == "UNAUTHENTICATED" or reasons & _KEY_REASONS:
        return AuthenticationFailed(f"gemini rejected the gateway's credentials: {status.message}",
                                    code="upstream_authentication_failed")
    if http_status == 403 or code == "PERMISSION_DENIED":
        return PermissionDenied(text, code=code)
    if http_status == 404 or code == "NOT_FOUND":
        return NotFound(text, code="model_not_found")
    if http_status == 429 or code == "RESOURCE_EXHAUSTED":
        retry_after = _retry_after(status, headers)
        return RateLimited(text, code="rate_limit_exceeded",
                           headers={"Retry-After": retry_after} if retry_after else None)
    if http_status == 504 or code == "DEADLINE_EXCEEDED":
        return UpstreamTimeout(text, code=code)
    if http_status == 503 or code == "UNAVAILABLE":
        return UpstreamOverloaded(text, code=code)
    if 400 <= http_status < 500:
        if "exceeds the maximum number of tokens" in status.message:
            return InvalidRequest(text, code="context_length_exceeded")
        return InvalidRequest(text, code=code)
    return UpstreamError(f"gemini failed with HTTP {http_status}: {status.message}", code=code)


def map_gemini_error(provider: str, http_status: int, body: bytes,
                     headers: Mapping[str, str]) -> JunctionError:
    """The :data:`~junction.upstream.http.ErrorMapper` for Gemini."""
    return error_from_status(http_status, _status_of(body), headers)
