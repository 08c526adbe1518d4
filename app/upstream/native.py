"""The upstream client on the serving event loop itself: HTTP/1.1 over asyncio transports, with
httptools (llhttp, the parser Node.js uses) reading the responses. ``http_client = "httptools"``,
the default.

Why: the other clients cost a thread hop each way. pyreqwest runs on a Tokio thread of its own,
so every upstream answer wakes the event loop from another thread (and, on one core, a context
switch each way); aiohttp stays on the loop but parses in Python. Here the upstream's socket is
one more file descriptor of the loop: the request is one ``write``, the answer is parsed in C as
it arrives, and the waiting task is woken directly (``bench/http_clients.py``; README,
Performance).

The contract is the aiohttp client's (``http.py``): pool slots (``max_connections``,
``pool_timeout``), error mapping and redaction, the SSE relay. Also: keep-alive connections per
origin (most recently used first, dropped after :data:`IDLE_SECONDS` idle), ``connect_timeout``
for the TCP and TLS set-up, ``read_timeout`` for each wait on the upstream (not the whole
answer), never a proxy or a redirect, no content decoding (nothing is asked for). A request that
finds its kept-alive connection closed by the upstream before any byte of an answer came back is
sent once more on a new connection (the upstream closed it idle: it never saw the request). A
stream's body is read with backpressure (the socket stops being read past
:data:`HIGH_WATER` bytes not yet relayed), and leaving a stream early closes its connection.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import httptools

from junction.errors import InvalidRequest, JunctionError, UpstreamError, UpstreamTimeout, UpstreamUnavailable
from junction.upstream.http import _TAIL_SECONDS, UpstreamClient, _with_extra

#: Seconds a kept-alive connection may wait unused before it is closed rather than reused.
IDLE_SECONDS = 60.0
#: Body bytes received but not yet relayed past which the socket stops being read (a slow client).
HIGH_WATER = 1 << 20
#: Parsed URLs kept (a provider's few endpoints; URLs with a model in them stay few too).
_TARGETS = 1024


class _Disconnected(ConnectionError):
    """The upstream closed the connection before its answer was whole."""


class _ReadTimeout(TimeoutError):
    """No byte from the upstream for ``read_timeout`` seconds."""


class _Connection(asyncio.Protocol):
    """One connection to an origin, carrying one exchange at a time."""

    def __init__(self, origin: tuple[str, str, int]) -> None:
        self.origin = origin
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.status = 0
        self.headers: dict[str, str] = {}
        self.chunks: deque[bytes] = deque()
        self.buffered = 0
        #: The exchange's state: answer head in, answer whole, bytes seen, failure.
        self.head_done = False
        self.complete = False
        self.received = False
        self.error: BaseException | None = None
        self.closed = False
        self.keep_alive = False
        self.paused = False
        self.idle_since = 0.0
        self._waiter: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._last_read = 0.0
        self._loop = asyncio.get_running_loop()
        #: An answer without a length or chunking ends when the connection does.
        self._close_delimited = False

    # --- asyncio.Protocol ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.received = True
        if self._timer is not None:  # a wait is on: its deadline moves (see _check_timeout)
            self._last_read = self._loop.time()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as error:
            self._fail(UpstreamError(f"the upstream's answer is not valid HTTP/1.1: {error}",
                                     code="upstream_protocol_error"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.head_done and self._close_delimited and not self.complete and exc is None:
            self.on_message_complete()  # its end is the connection's
            return
        if not self.complete:
            self._fail(_Disconnected("the upstream closed the connection before its answer was whole"))

    # --- httptools callbacks ------------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        known = self.headers.get(key)
        self.headers[key] = text if known is None else f"{known}, {text}"

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        headers = self.headers
        self._close_delimited = "content-length" not in headers and "transfer-encoding" not in headers
        self.head_done = True
        self._wake()

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)
        self.buffered += len(body)
        if self.buffered > HIGH_WATER and not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if self.status < 200:  # an interim answer (100 Continue, 103 Early Hints): the real one follows
            self.headers, self.head_done = {}, False
            return
        self.complete = True
        self.keep_alive = self.parser.should_keep_alive()  # the message's own (reset after it)
        self._wake()

    # --- one exchange -------------------------------------------------------------------------

    def send(self, request: bytes) -> None:
        self.status, self.headers, self.buffered = 0, {}, 0
        self.chunks.clear()
        self.head_done = self.complete = self.received = self.keep_alive = False
        self.error = None
        assert self.transport is not None
        self.transport.write(request)

    async def wait(self, read_timeout: float) -> None:
        """Until the parser has more for the caller (the head, a body chunk, the end) or the
        exchange failed; ``read_timeout`` seconds without a byte from the upstream fail it."""
        if self.error is not None:
            raise self.error
        loop = self._loop
        self._waiter = waiter = loop.create_future()
        self._last_read = loop.time()
        self._timer = loop.call_at(self._last_read + read_timeout, self._check_timeout, read_timeout)
        try:
            await waiter
        finally:
            self._waiter = None
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
        if self.error is not None:
            raise self.error

    def _check_timeout(self, read_timeout: float) -> None:
        # One timer per wait, moved on lazily: a read pushes the deadline without re-arming it.
        loop = self._loop
        deadline = self._last_read + read_timeout
        if loop.time() < deadline:
            self._timer = loop.call_at(deadline, self._check_timeout, read_timeout)
            return
        self._timer = None
        self._fail(_ReadTimeout(f"no answer from the upstream in {read_timeout:g} s"))
        self.close()

    def take(self) -> bytes:
        """The body bytes received so far (reading resumes if it was paused)."""
        chunks = self.chunks
        data = chunks.popleft() if len(chunks) == 1 else b"".join(chunks)
        chunks.clear()
        self.buffered = 0
        if self.paused and self.transport is not None and not self.closed:
            self.paused = False
            self.transport.resume_reading()
        return data

    @property
    def reusable(self) -> bool:
        return self.complete and self.keep_alive and not self.closed

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def _fail(self, error: BaseException) -> None:
        if self.error is None:
            self.error = error
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


class NativeClient(UpstreamClient):
    """A provider's pooled client on the event loop (see the module docstring)."""

    _started = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._idle: dict[tuple[str, str, int], list[_Connection]] = {}
        self._targets: dict[str, tuple[tuple[str, str, int], bytes]] = {}
        self._tls: ssl.SSLContext | None = None

    async def start(self) -> None:
        self._started = True

    async def close(self) -> None:
        self._started = False
        idle, self._idle = self._idle, {}
        for connections in idle.values():
            for connection in connections:
                connection.close()

    @property
    def started(self) -> bool:
        return self._started

    # --- requests -----------------------------------------------------------------------------

    async def _fetch(self, method: str, url: str, headers: Mapping[str, str], body: bytes | None = None) -> bytes:
        try:
            async with self._slot():
                connection = await self._exchange(method, url, headers, body)
                try:
                    payload = await self._whole(connection)
                finally:
                    self._release(connection)
        except JunctionError as error:
            raise self.redacted(error, headers) from None
        except Exception as error:  # cancellation is a BaseException and passes untouched
            raise self.redacted(self._transport_error(error), headers) from error
        if connection.status >= 400:
            raise self.redacted(self.map_error(self.provider, connection.status, payload, connection.headers),
                                headers)
        return payload

    @asynccontextmanager
    async def _response(self, url: str, body: bytes,
                        headers: Mapping[str, str]) -> AsyncIterator[AsyncIterator[bytes]]:
        try:
            connection = await self._exchange("POST", url, headers, body)
        except JunctionError as error:
            raise self.redacted(error, headers) from None
        except Exception as error:
            raise self.redacted(self._transport_error(error), headers) from error
        try:
            if connection.status >= 400:
                try:
                    payload = await self._whole(connection)
                except Exception as error:
                    raise self.redacted(self._transport_error(error), headers) from error
                raise self.redacted(self.map_error(self.provider, connection.status, payload, connection.headers),
                                    headers)
            yield self._chunks(connection)
            await self._finish(connection)
        finally:
            self._release(connection)  # kept only when its answer was read whole

    async def _whole(self, connection: _Connection) -> bytes:
        """The rest of the answer's body, to its end."""
        parts: list[bytes] = []
        while not connection.complete:
            await connection.wait(self.config.read_timeout)
            if connection.paused:  # a large body: keep it reading
                parts.append(connection.take())
        if not parts:
            return connection.take()
        parts.append(connection.take())
        return b"".join(parts)

    async def _chunks(self, connection: _Connection) -> AsyncIterator[bytes]:
        read_timeout = self.config.read_timeout
        try:
            while True:
                if connection.chunks:
                    yield connection.take()
                elif connection.complete:
                    return
                else:
                    await connection.wait(read_timeout)
        except JunctionError:
            raise
        except Exception as error:  # cancellation and generator close are BaseExceptions: they pass
            raise self._transport_error(error) from error

    @staticmethod
    async def _finish(connection: _Connection) -> None:
        """After a complete stream, wait briefly for the end of the body (the chunked terminator
        may trail the last event) so the connection can be kept; past the wait it is dropped."""
        if connection.complete:
            return
        try:
            async with asyncio.timeout(_TAIL_SECONDS):
                while not connection.complete:
                    connection.take()
                    await connection.wait(_TAIL_SECONDS)
        except (TimeoutError, OSError, JunctionError):
            return

    async def _exchange(self, method: str, url: str, headers: Mapping[str, str],
                        body: bytes | None) -> _Connection:
        """Send the request on a kept-alive connection (or a new one) and wait for the answer's
        head; the connection is the caller's to :meth:`_release`."""
        origin, target = self._target(url)
        request = self._request(method, target, origin, headers, body)
        read_timeout = self.config.read_timeout
        connection = self._reuse(origin)
        if connection is not None:
            connection.send(request)
            try:
                while not connection.head_done:
                    await connection.wait(read_timeout)
                return connection
            except _Disconnected:
                connection.close()
                if connection.received:
                    raise
            except BaseException:
                connection.close()
                raise
            # Closed by the upstream while idle, before it read the request: once more, anew.
        connection = await self._connect(origin)
        connection.send(request)
        try:
            while not connection.head_done:
                await connection.wait(read_timeout)
        except BaseException:
            connection.close()
            raise
        return connection

    def _reuse(self, origin: tuple[str, str, int]) -> _Connection | None:
        idle = self._idle.get(origin)
        if not idle:
            return None
        now = asyncio.get_running_loop().time()
        while idle:
            connection = idle.pop()
            if not connection.closed and now - connection.idle_since < IDLE_SECONDS:
                return connection
            connection.close()
        return None

    def _release(self, connection: _Connection) -> None:
        if self._started and connection.reusable:
            connection.idle_since = asyncio.get_running_loop().time()
            self._idle.setdefault(connection.origin, []).append(connection)
        else:
            connection.close()

    async def _connect(self, origin: tuple[str, str, int]) -> _Connection:
        scheme, host, port = origin
        loop = asyncio.get_running_loop()
        tls = None
        if scheme == "https":
            if self._tls is None:  # the system's CAs (OpenSSL's SSL_CERT_FILE / SSL_CERT_DIR override them)
                self._tls = ssl.create_default_context()
            tls = self._tls
        async with asyncio.timeout(self.config.connect_timeout):
            _, connection = await loop.create_connection(lambda: _Connection(origin), host, port, ssl=tls,
                                                         server_hostname=host if tls is not None else None)
        return connection

    def _target(self, url: str) -> tuple[tuple[str, str, int], bytes]:
        known = self._targets.get(url)
        if known is not None:
            return known
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https") or not parts.hostname:
            raise UpstreamUnavailable(f"{self.provider}: not an http(s) URL: {url!r}", code="upstream_unreachable")
        port = parts.port or (443 if scheme == "https" else 80)
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        known = ((scheme, parts.hostname, port), path.encode("ascii", "strict"))
        if len(self._targets) < _TARGETS:
            self._targets[url] = known
        return known

    @staticmethod
    def _request(method: str, target: bytes, origin: tuple[str, str, int], headers: Mapping[str, str],
                 body: bytes | None) -> bytes:
        scheme, host, port = origin
        name = f"[{host}]" if ":" in host else host  # an IPv6 literal
        authority = name if port == (443 if scheme == "https" else 80) else f"{name}:{port}"
        lines = [f"{method} {target.decode('ascii')} HTTP/1.1\r\nhost: {authority}\r\n"]
        for name, value in _with_extra(headers).items():
            if "\n" in value or "\r" in value or "\n" in name or "\r" in name or ":" in name:
                raise InvalidRequest(f"header {name!r}: a line break or colon cannot be sent upstream",
                                     code="invalid_header")
            lines.append(f"{name}: {value}\r\n")
        if body is not None:
            lines.append(f"content-length: {len(body)}\r\n\r\n")
            return "".join(lines).encode("latin-1") + body
        lines.append("\r\n")
        return "".join(lines).encode("latin-1")

    def _transport_error(self, error: BaseException) -> JunctionError:
        if isinstance(error, JunctionError):
            return error
        if isinstance(error, TimeoutError):
            return UpstreamTimeout(f"{self.provider} did not answer in time", code="upstream_timeout")
        if isinstance(error, OSError):  # refused, reset, DNS, TLS, closed mid-answer
            return UpstreamUnavailable(f"{self.provider} could not be reached: {error}", code="upstream_unreachable")
        return UpstreamError(f"{self.provider}: {type(error).__name__}: {error}", code="upstream_protocol_error")
