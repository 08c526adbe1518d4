"""One HTTP/1.1 connection to an upstream as an asyncio protocol, httptools (llhttp) parsing its
answers: the transport of the event-loop client (``native.py``), one exchange at a time.

The caller sends a request (:meth:`Connection.send`) and waits (:meth:`Connection.wait`) until
the parser has more for it: the answer's head, body bytes, its end, or a failure. Body bytes wait
in the connection until taken; past :data:`HIGH_WATER` of them the socket is not read until they
are (backpressure from a slow client). ``read_timeout`` bounds each wait for a byte, with one
timer per wait that reads move on lazily (a timer per read would cost more than the read).
"""

from __future__ import annotations

import asyncio
from collections import deque

import httptools

from junction.errors import UpstreamError

#: Body bytes received but not yet taken past which the socket stops being read (a slow client).
HIGH_WATER = 1 << 20


class Disconnected(ConnectionError):
    """The upstream closed the connection before its answer was whole."""


class ReadTimeout(TimeoutError):
    """No byte from the upstream for ``read_timeout`` seconds."""


class Connection(asyncio.Protocol):
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
            self._fail(Disconnected("the upstream closed the connection before its answer was whole"))

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
        transport = self.transport
        if transport is None or transport.is_closing():  # closed by the upstream, not yet heard
            self._fail(Disconnected("the upstream closed the connection"))
            return
        transport.write(request)

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
        self._fail(ReadTimeout(f"no answer from the upstream in {read_timeout:g} s"))
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
