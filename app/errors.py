"""The one error hierarchy of Junction and the one place it becomes an HTTP response.

Everything that goes wrong on purpose raises a :class:`JunctionError` subclass. The Litestar
exception handlers at the bottom of this module turn them (and Litestar's own HTTP errors) into the
OpenAI error body ``{"error": {"message", "type", "param", "code"}}``, or Anthropic's
``{"type": "error", "error": {"type", "message"}}`` on the Anthropic ingress.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar

import msgspec

from junction.formats.anthropic.rate_limit_headers import with_anthropic_names

if TYPE_CHECKING:  # Litestar is imported only where a response is made: the CLI never needs it
    from litestar import Request, Response
    from litestar.exceptions import HTTPException

log = logging.getLogger("junction.errors")


class JunctionError(Exception):
    """Base of every error Junction raises deliberately.

    ``status`` is the HTTP status, ``error_type`` the OpenAI ``error.type``; ``code`` and ``param``
    are optional refinements. ``headers`` are added to the response (e.g. ``Retry-After``).
    """

    status: ClassVar[int] = 500
    error_type: ClassVar[str] = "server_error"
    anthropic_type: ClassVar[str] = "api_error"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.param = param
        self.headers = headers or {}


class ConfigError(JunctionError):
    """Start-up configuration is invalid. Never reaches a client: it stops the server."""


class InvalidRequest(JunctionError):
    status = 400
    error_type = "invalid_request_error"
    anthropic_type = "invalid_request_error"


class AuthenticationFailed(JunctionError):
    status = 401
    error_type = "authentication_error"
    anthropic_type = "authentication_error"


class PermissionDenied(JunctionError):
    status = 403
    error_type = "permission_error"
    anthropic_type = "permission_error"


class NotFound(JunctionError):
    status = 404
    error_type = "not_found_error"
    anthropic_type = "not_found_error"


class Conflict(JunctionError):
    """The request clashes with what exists, e.g. a bridge slug already used in the org."""

    status = 409
    error_type = "conflict_error"
    anthropic_type = "invalid_request_error"


class RequestTimeout(JunctionError):
    """The client did not send its request in time; the connection is closed after the answer."""

    status = 408
    error_type = "invalid_request_error"
    anthropic_type = "invalid_request_error"


class PayloadTooLarge(JunctionError):
    status = 413
    error_type = "invalid_request_error"
    anthropic_type = "request_too_large"


#: Whether a client should retry the request, ``"true"`` or ``"false"``: the OpenAI and Anthropic
#: SDKs obey it over their own rules (which retry every 429). Sent as ``false`` with a refusal
#: that no retry soon can turn into an answer: they would wait and fail again.
SHOULD_RETRY = "x-should-retry"


class RateLimited(JunctionError):
    status = 429
    error_type = "rate_limit_error"
    anthropic_type = "rate_limit_error"


class ServiceUnavailable(JunctionError):
    """One of our own backends (a store) cannot serve right now; the client may retry."""

    status = 503
    error_type = "service_unavailable"
    anthropic_type = "overloaded_error"


class UpstreamError(JunctionError):
    """The provider answered with a server error, or with something we could not understand."""

    status = 502
    error_type = "upstream_error"
    anthropic_type = "api_error"


class UpstreamOverloaded(UpstreamError):
    status = 503
    error_type = "overloaded_error"
    anthropic_type = "overloaded_error"


class UpstreamTimeout(UpstreamError):
    status = 504
    error_type = "timeout_error"
    anthropic_type = "timeout_error"


class UpstreamUnavailable(UpstreamError):
    """The provider could not be reached at all (connection refused, DNS, TLS)."""

    status = 502
    error_type = "upstream_unavailable"


def error_classes() -> frozenset[str]:
    """Every error class (``error_type``) an error of ours can have; routing policies name the
    classes they retry on with these."""
    classes: set[str] = set()
    pending: list[type[JunctionError]] = [JunctionError]
    while pending:
        kind = pending.pop()
        classes.add(kind.error_type)
        pending.extend(kind.__subclasses__())
    return frozenset(classes)


# ---------------------------------------------------------------------------------------------
# The one mapping to HTTP bodies.


class OpenAIErrorBody(msgspec.Struct):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class OpenAIErrorEnvelope(msgspec.Struct):
    error: OpenAIErrorBody


class AnthropicErrorBody(msgspec.Struct):
    type: str
    message: str


class AnthropicErrorEnvelope(msgspec.Struct, tag="error"):
    error: AnthropicErrorBody


_encoder = msgspec.json.Encoder()

#: Headers of an answer sent while the request's body is left unread (too large, too slow): the
#: connection closes after it, and the client knows not to send another request on it (a kept
#: connection would race the server's close: "disconnected without sending a response").
BODY_LEFT_UNREAD: Mapping[str, str] = MappingProxyType({"connection": "close"})

#: Litestar's own HTTP errors (unknown route, wrong method, body too large...) by status.
_HTTP_STATUS_TO_ERROR: dict[int, type[JunctionError]] = {
    400: InvalidRequest,
    401: AuthenticationFailed,
    403: PermissionDenied,
    404: NotFound,
    405: InvalidRequest,
    413: PayloadTooLarge,
    429: RateLimited,
}

ANTHROPIC_PATH_PREFIX = "/v1/messages"


def error_body(error: JunctionError, *, anthropic: bool = False) -> bytes:
    """Encode ``error`` as the JSON body a client of that ingress expects."""
    if anthropic:
        return _encoder.encode(
            AnthropicErrorEnvelope(AnthropicErrorBody(type=error.anthropic_type, message=error.message))
        )
    return _encoder.encode(
        OpenAIErrorEnvelope(
            OpenAIErrorBody(message=error.message, type=error.error_type, param=error.param, code=error.code)
        )
    )


def error_response(error: JunctionError, *, anthropic: bool = False) -> Response[bytes]:
    from litestar import Response

    return Response(
        content=error_body(error, anthropic=anthropic),
        status_code=error.status,
        media_type="application/json",
        headers=with_anthropic_names(error.headers) if anthropic else error.headers,
    )


def _wants_anthropic(request: Request[Any, Any, Any]) -> bool:
    return request.scope["path"].startswith(ANTHROPIC_PATH_PREFIX)


def handle_junction_error(request: Request[Any, Any, Any], exc: JunctionError) -> Response[bytes]:
    log_server_error(request.method, request.scope["path"], exc)
    return error_response(exc, anthropic=_wants_anthropic(request))


def log_server_error(method: str, path: str, exc: JunctionError) -> None:
    if exc.status >= 500:
        log.warning("%s %s -> %s: %s", method, path, exc.status, exc.message)


def handle_http_exception(request: Request[Any, Any, Any], exc: HTTPException) -> Response[bytes]:
    limit = None
    if exc.status_code == 413:  # Litestar's refusal of a Content-Length above the limit: say which
        handler = request.scope.get("route_handler")
        limit = (handler.resolve_request_max_body_size() if handler is not None
                 else getattr(request.app, "request_max_body_size", None))
    error = error_for_http_exception(exc, request.method, request.scope["path"], max_body_bytes=limit)
    response = error_response(error, anthropic=_wants_anthropic(request))
    response.status_code = exc.status_code
    return response


def error_for_http_exception(exc: HTTPException, method: str, path: str, *,
                             max_body_bytes: int | None = None) -> JunctionError:
    """Our error for one of Litestar's (sent with the status of ``exc``, which may differ)."""
    error_class = _HTTP_STATUS_TO_ERROR.get(exc.status_code)
    if error_class is None:
        error_class = JunctionError if exc.status_code >= 500 else InvalidRequest
    message = exc.detail or "request failed"
    code = None
    headers = dict(exc.headers or {})
    if exc.status_code == 404:
        message = f"no route for {method} {path}"
    elif exc.status_code == 413:
        message = f"request body: larger than server.max_body_bytes ({max_body_bytes} bytes)"
        code = "body_too_large"
        headers.update(BODY_LEFT_UNREAD)
    return error_class(message, code=code, headers=headers)


def handle_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    return error_response(unexpected_error(request.method, request.scope["path"], exc),
                          anthropic=_wants_anthropic(request))


def unexpected_error(method: str, path: str, exc: Exception) -> JunctionError:
    """Logs ``exc`` with its traceback; the client gets a generic 500."""
    log.exception("unhandled error on %s %s", method, path, exc_info=exc)
    return JunctionError("internal error; the gateway log has the details", code="internal_error")


def exception_handlers() -> dict[type[Exception], Any]:
    """The app's exception handlers: Junction's errors, Litestar's HTTP errors, anything else."""
    from litestar.exceptions import HTTPException

    return {
        JunctionError: handle_junction_error,
        HTTPException: handle_http_exception,
        Exception: handle_unexpected,
    }


def __getattr__(name: str) -> Any:
    # ``EXCEPTION_HANDLERS`` is built on first use, so importing this module (every CLI command
    # does) does not import Litestar.
    if name == "EXCEPTION_HANDLERS":
        return exception_handlers()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
