"""One pooled HTTP client per provider, and the mapping of upstream failures to our errors.

:class:`UpstreamClient` is the aiohttp client (``http_client = "aiohttp"``); the default event-loop
client (``native.py``) and the pyreqwest one (``reqwest.py``) derive from it. aiohttp is imported
when such a client starts, not with this module: a worker on another client does without its ~9 MB.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Protocol

import msgspec

from junction.errors import (
    AuthenticationFailed,
    InvalidRequest,
    JunctionError,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    RateLimited,
    ServiceUnavailable,
    UpstreamError,
    UpstreamOverloaded,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from junction.plugins.protocols import PluginContext, ProviderConfig
from junction.schemas.stream import StreamDone, StreamEvent
from junction.upstream.redact import header_secrets, redact
from junction.upstream.sse import iter_sse

if TYPE_CHECKING:
    import aiohttp

log = logging.getLogger("junction.upstream")

#: Extra headers for the upstream requests of the current attempt (a tracing stage sets
#: ``traceparent`` here around ``next(call, deployment)``). A ContextVar, not an argument: the
#: provider adapters between the stage and this client need not know about it.
upstream_headers: ContextVar[Mapping[str, str] | None] = ContextVar("junction_upstream_headers", default=None)


def _with_extra(headers: Mapping[str, str]) -> Mapping[str, str]:
    extra = upstream_headers.get()
    return {**headers, **extra} if extra else headers


class StreamReader(Protocol):
    """The state of one upstream stream: provider event data in, unified events out."""

    def read(self, data: str) -> Iterable[StreamEvent]:
        """The unified events one SSE ``data`` payload makes (possibly none)."""
        ...

    def close(self) -> Iterable[StreamEvent]:
        """The events owed once the upstream ended without a ``StreamDone`` (at least that)."""
        ...


class _ErrorDetail(msgspec.Struct):
    message: str | None = None
    type: str | None = None
    code: str | int | None = None
    param: str | None = None


class _ErrorEnvelope(msgspec.Struct):
    error: _ErrorDetail | str | None = None
    message: str | None = None


_error_decoder = msgspec.json.Decoder(_ErrorEnvelope)
_HTML_TITLE = re.compile(rb"<title[^>]*>\s*([^<]{1,200}?)\s*</title>", re.IGNORECASE)


def upstream_error_message(body: bytes) -> tuple[str, str | None]:
    """(message, code) from a provider's JSON error body; the raw text when it is not JSON.

    Understands ``{"error": {"message", "code"}}`` (OpenAI, Groq, Mistral, OpenRouter, Gemini,
    Anthropic) and ``{"message": ...}`` / ``{"error": "..."}`` variants.
    """
    message, code, _, _ = _read_error(body)
    return message, code


def _read_error(body: bytes) -> tuple[str, str | None, str | None, bool]:
    """(message, code, param, whether the body was the API's own JSON error)."""
    try:
        envelope = _error_decoder.decode(body)
    except msgspec.DecodeError:
        return (_non_json_message(body), None, None, False)
    if isinstance(envelope.error, _ErrorDetail):
        code = envelope.error.code
        return (envelope.error.message or envelope.message or "no error message",
                str(code) if code is not None else None, envelope.error.param, True)
    return (envelope.error or envelope.message or "no error message", None, None, True)


def _non_json_message(body: bytes) -> str:
    """A non-JSON error body in a few words. An HTML page (a proxy's, a load balancer's) is told by
    its title only: its markup says nothing to an API client and may name internal hosts."""
    text = body.strip()
    if text.startswith(b"<"):
        title = _HTML_TITLE.search(text)
        what = f" ({title.group(1).decode('utf-8', 'replace')})" if title else ""
        return f"an HTML page{what} instead of an API error"
    return text[:500].decode("utf-8", "replace") or "no error message"


def error_for_status(provider: str, status: int, body: bytes, headers: Mapping[str, str]) -> JunctionError:
    """Map an upstream HTTP error to the error the client should see."""
    message, code, param, api_error = _read_error(body)
    text = f"{provider}: {message}"
    retry_after = headers.get("retry-after")
    retry_headers = {"Retry-After": retry_after} if retry_after else None
    if status == 401:
        return AuthenticationFailed(f"{provider} rejected the gateway's credentials: {message}",
                                    code=code or "upstream_authentication_failed")
    if status == 402:
        # The gateway's upstream account cannot pay (OpenRouter's "insufficient credits"): nothing
        # the client can fix, and another deployment may well succeed, so a retryable 502.
        return UpstreamError(text, code="upstream_payment_required")
    if status == 403:
        return PermissionDenied(text, code=code)
    if status == 404:
        if not api_error:  # not the provider saying "no such model": a wrong base_url or a proxy
            return UpstreamError(f"{provider} answered HTTP 404 without an API error (is its base_url "
                                 f"right?): {message}", code="upstream_not_found")
        return NotFound(text, code=code or "model_not_found")
    if status == 413:
        return PayloadTooLarge(text, code=code)
    if status == 429:
        return RateLimited(text, code=code or "rate_limit_exceeded", headers=retry_headers)
    if status in (408, 504):
        return UpstreamTimeout(text, code=code)
    if status in (503, 529):
        return UpstreamOverloaded(text, code=code, headers=retry_headers)
    if 400 <= status < 500:
        return InvalidRequest(text, code=code, param=param)  # the SDKs expose ``param``
    return UpstreamError(f"{provider} failed with HTTP {status}: {message}", code=code)


ErrorMapper = Callable[[str, int, bytes, Mapping[str, str]], JunctionError]

#: How long a finished stream waits for the end of the upstream's body before dropping the connection.
_TAIL_SECONDS = 0.25


class UpstreamClient:
    """A provider's pooled HTTP client: created in ``start`` (inside the serving loop), reused
    for every request (keep-alive), closed in ``close``."""

    def __init__(self, provider: str, config: ProviderConfig, map_error: ErrorMapper = error_for_status):
        self.provider = provider
        self.config = config
        self.map_error = map_error
        self._session: aiohttp.ClientSession | None = None
        #: One per pooled connection: waiting for one is bounded by ``pool_timeout`` and reported
        #: as our own overload, never mistaken for the upstream's connect timeout.
        self._slots = asyncio.Semaphore(config.max_connections)
        #: Requests refused because every connection was busy for ``pool_timeout``.
        self.overloaded = 0

    async def start(self) -> None:
        """Open the pool; a no-op when it is open (the Runtime and the adapter may both ask)."""
        if self._session is not None:
            return
        import aiohttp

        connector = aiohttp.TCPConnector(limit=self.config.max_connections, ttl_dns_cache=300,
                                         keepalive_timeout=60, enable_cleanup_closed=True)
        timeout = aiohttp.ClientTimeout(total=None, connect=self.config.connect_timeout,
                                        sock_read=self.config.read_timeout)
        self._session = aiohttp.ClientSession(connector=connector, timeout=timeout,
                                              skip_auto_headers=("User-Agent",), raise_for_status=False)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def started(self) -> bool:
        """Whether ``start`` has run and ``close`` not yet."""
        return self._session is not None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise UpstreamUnavailable(f"{self.provider}: HTTP client not started")
        return self._session

    async def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> bytes:
        """POST and return the body of a 2xx answer; raise the mapped error otherwise."""
        return await self._fetch("POST", url, headers, body)

    async def get(self, url: str, headers: Mapping[str, str]) -> bytes:
        """GET and return the body of a 2xx answer; raise the mapped error otherwise."""
        return await self._fetch("GET", url, headers)

    @asynccontextmanager
    async def _slot(self) -> AsyncIterator[None]:
        """Hold one of the pool's ``max_connections`` for a request (or a whole stream)."""
        slots = self._slots
        if slots.locked():
            try:
                async with asyncio.timeout(self.config.pool_timeout):
                    await slots.acquire()
            except TimeoutError:
                self.overloaded += 1
                log.warning("%s: pool full (%d connections busy for %gs); refused with 503, %d so far",
                            self.provider, self.config.max_connections, self.config.pool_timeout,
                            self.overloaded)
                raise ServiceUnavailable(
                    f"{self.provider}: every one of the gateway's {self.config.max_connections} connections "
                    f"(max_connections) to it is busy; retry shortly", code="gateway_overloaded",
                    headers={"Retry-After": str(max(1, math.ceil(self.config.pool_timeout)))}) from None
        else:
            await slots.acquire()
        try:
            yield
        finally:
            slots.release()

    async def _fetch(self, method: str, url: str, headers: Mapping[str, str], body: bytes | None = None) -> bytes:
        try:
            async with self._slot(), self.session.request(method, url, data=body,
                                                          headers=_with_extra(headers)) as response:
                payload = await response.read()
        except JunctionError:
            raise
        except Exception as error:  # cancellation is a BaseException and passes untouched
            raise self.redacted(self._transport_error(error), headers) from error
        if response.status >= 400:
            error = self.map_error(self.provider, response.status, payload, response.headers)
            raise self.redacted(error, headers)
        return payload

    def redacted(self, error: JunctionError, headers: Mapping[str, str]) -> JunctionError:
        """``error`` with the credential the request was sent with (and any key-shaped text)
        removed from its message: the one place upstream text is cleaned before a client or the
        log sees it."""
        message = redact(error.message, [self.config.api_key, *header_secrets(headers)])
        if message != error.message:
            error.message = message
            error.args = (message,)
        return error

    @asynccontextmanager
    async def stream(self, url: str, body: bytes, headers: Mapping[str, str]) -> AsyncIterator[AsyncIterator[bytes]]:
        """POST and yield the response body as chunks; leaving the block closes the connection."""
        async with self._slot():
            async with self._response(url, body, headers) as chunks:
                yield chunks

    @asynccontextmanager
    async def _response(self, url: str, body: bytes,
                        headers: Mapping[str, str]) -> AsyncIterator[AsyncIterator[bytes]]:
        try:
            response = await self.session.post(url, data=body, headers=_with_extra(headers))
        except Exception as error:
            raise self.redacted(self._transport_error(error), headers) from error
        try:
            if response.status >= 400:
                try:
                    payload = await response.read()
                except Exception as error:
                    raise self.redacted(self._transport_error(error), headers) from error
                raise self.redacted(self.map_error(self.provider, response.status, payload, response.headers),
                                    headers)
            yield self._chunks(response)
            await self._release(response)
        finally:
            response.close()  # a no-op once released; drops the connection after a failure or a cut

    @staticmethod
    async def _release(response: aiohttp.ClientResponse) -> None:
        """Back to the pool after a complete stream. Its end (the chunked terminator) may trail the
        last event by a moment: wait for it briefly, rather than drop a kept-alive connection and
        make the next request pay a new TCP and TLS handshake."""
        import aiohttp

        if not response.content.at_eof():
            try:
                async with asyncio.timeout(_TAIL_SECONDS):
                    while await response.content.readany():
                        pass  # bytes after the stream's end: nothing to relay
            except (TimeoutError, aiohttp.ClientError):
                return  # the caller's ``finally`` closes the connection
        response.release()

    async def stream_events(self, url: str, body: bytes, headers: Mapping[str, str],
                            reader: StreamReader) -> AsyncIterator[StreamEvent]:
        """POST a streaming request and yield the unified events ``reader`` makes of its SSE
        answer, ending with ``StreamDone``. Closing the iterator closes the upstream connection."""
        try:
            async with self.stream(url, body, {**headers, "accept": "text/event-stream"}) as chunks:
                async for event in iter_sse(chunks):
                    for unified in reader.read(event.data):
                        yield unified
                        if isinstance(unified, StreamDone):
                            return
            for unified in reader.close():
                yield unified
        except JunctionError as error:  # an error event's text, quoted by the upstream mid-stream
            self.redacted(error, headers)
            raise

    async def _chunks(self, response: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
        try:
            async for chunk in response.content.iter_any():
                yield chunk
        except Exception as error:  # cancellation and generator close are BaseExceptions: they pass
            raise self._transport_error(error) from error

    def _transport_error(self, error: BaseException) -> JunctionError:
        """Our error for a failure to get the upstream's answer at all (one of ours passes as it
        is): a timeout, the upstream out of reach, else a protocol error. Which of the library's
        exceptions are which is the client's own (:meth:`_failure_kinds`)."""
        if isinstance(error, JunctionError):
            return error
        timeouts, unreachable = self._failure_kinds()
        if isinstance(error, timeouts):
            return UpstreamTimeout(f"{self.provider} did not answer in time", code="upstream_timeout")
        if isinstance(error, unreachable):
            return UpstreamUnavailable(f"{self.provider} could not be reached: {error}", code="upstream_unreachable")
        return UpstreamError(f"{self.provider}: {type(error).__name__}: {error}", code="upstream_protocol_error")

    def _failure_kinds(self) -> tuple[tuple[type[BaseException], ...], tuple[type[BaseException], ...]]:
        """The client library's exceptions for (a timeout, an upstream out of reach)."""
        import aiohttp  # loaded by start()

        return (asyncio.TimeoutError, aiohttp.ServerTimeoutError), (aiohttp.ClientConnectionError,)


def upstream_client(context: PluginContext | None, name: str, config: ProviderConfig,
                    map_error: ErrorMapper = error_for_status) -> UpstreamClient:
    """The provider's pooled client: the process's own (``context.http``, opened and closed by the
    Runtime), or, outside a Runtime (a test building an adapter by hand), one of its own."""
    if context is not None and context.http is not None:
        return context.http.client(name, config, map_error)
    return new_upstream_client(name, config, map_error)


def new_upstream_client(name: str, config: ProviderConfig, map_error: ErrorMapper = error_for_status) -> UpstreamClient:
    """A client on the library ``config.http_client`` names."""
    if config.http_client == "httptools":
        from junction.upstream.native import NativeClient

        return NativeClient(name, config, map_error)
    if config.http_client == "pyreqwest":
        from junction.upstream.reqwest import ReqwestClient

        return ReqwestClient(name, config, map_error)
    return UpstreamClient(name, config, map_error)


class ClientLifecycle:
    """``start`` and ``close`` for a provider adapter whose one upstream resource is ``client``
    (no-ops for a client the Runtime already opened, and closes last)."""

    client: UpstreamClient

    async def start(self) -> None:
        await self.client.start()

    async def close(self) -> None:
        await self.client.close()
