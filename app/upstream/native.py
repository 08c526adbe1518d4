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
:data:`~junction.upstream.http1.HIGH_WATER` bytes not yet relayed), and leaving a stream early closes its connection.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import quote, urlsplit

from junction.errors import InvalidRequest, JunctionError, UpstreamUnavailable
from junction.upstream.http import _TAIL_SECONDS, UpstreamClient, _with_extra
from junction.upstream.http1 import Connection, Disconnected

#: Seconds a kept-alive connection may wait unused before it is closed rather than reused.
IDLE_SECONDS = 60.0
#: Parsed URLs kept (a provider's few endpoints; URLs with a model in them stay few too).
_TARGETS = 1024
#: What a request target keeps as it is (RFC 3986 path and query characters, and ``%``).
_PATH_SAFE = "/?#[]@!$&'()*+,;=:-._~%"


class NativeClient(UpstreamClient):
    """A provider's pooled client on the event loop (see the module docstring)."""

    _started = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._idle: dict[tuple[str, str, int], list[Connection]] = {}
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

    async def _whole(self, connection: Connection) -> bytes:
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

    async def _chunks(self, connection: Connection) -> AsyncIterator[bytes]:
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
    async def _finish(connection: Connection) -> None:
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
                        body: bytes | None) -> Connection:
        """Send the request on a kept-alive connection (or a new one) and wait for the answer's
        head; the connection is the caller's to :meth:`_release`."""
        origin, target = self._target(url)
        request = self._request(method, target, origin, headers, body)
        connection = self._reuse(origin)
        if connection is not None:
            try:
                return await self._sent(connection, request)
            except Disconnected:
                if connection.received:
                    raise
                # Closed by the upstream while idle, before it read the request: once more, anew.
        return await self._sent(await self._connect(origin), request)

    async def _sent(self, connection: Connection, request: bytes) -> Connection:
        """``connection`` once ``request`` went on it and the answer's head came back; closed
        when that fails."""
        connection.send(request)
        try:
            while not connection.head_done:
                await connection.wait(self.config.read_timeout)
        except BaseException:
            connection.close()
            raise
        return connection

    def _reuse(self, origin: tuple[str, str, int]) -> Connection | None:
        idle = self._idle.get(origin)
        if not idle:
            return None
        now = time.monotonic()  # not the loop's time: asyncio.get_running_loop() is a getpid() call on 3.11
        while idle:
            connection = idle.pop()
            if not connection.closed and now - connection.idle_since < IDLE_SECONDS:
                return connection
            connection.close()
        return None

    def _release(self, connection: Connection) -> None:
        if self._started and connection.reusable:
            connection.idle_since = time.monotonic()
            self._idle.setdefault(connection.origin, []).append(connection)
        else:
            connection.close()

    async def _connect(self, origin: tuple[str, str, int]) -> Connection:
        scheme, host, port = origin
        loop = asyncio.get_running_loop()
        tls = None
        if scheme == "https":
            if self._tls is None:  # the system's CAs (OpenSSL's SSL_CERT_FILE / SSL_CERT_DIR override them)
                self._tls = ssl.create_default_context()
            tls = self._tls
        async with asyncio.timeout(self.config.connect_timeout):
            _, connection = await loop.create_connection(lambda: Connection(origin), host, port, ssl=tls,
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
        # Percent-encoded as a browser would (a client's model name can end up in a path): no space,
        # control or non-ASCII character reaches the request line; escapes already there are kept.
        target = quote(path, safe=_PATH_SAFE).encode("ascii")
        known = ((scheme, parts.hostname, port), target)
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
        lines.append(f"content-length: {len(body)}\r\n\r\n" if body is not None else "\r\n")
        try:
            head = "".join(lines).encode("latin-1")
        except UnicodeEncodeError:
            raise InvalidRequest("a header holds a character HTTP/1.1 headers cannot carry (beyond Latin-1)",
                                 code="invalid_header") from None
        return head + body if body is not None else head

    def _failure_kinds(self) -> tuple[tuple[type[BaseException], ...], tuple[type[BaseException], ...]]:
        return (TimeoutError,), (OSError,)  # OSError: refused, reset, DNS, TLS, closed mid-answer
