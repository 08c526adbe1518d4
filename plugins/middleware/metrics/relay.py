"""The usage relay (``[middleware.metrics] relay``): one process per node, beside the Granian
workers (a node service of ``junction serve``, see :mod:`junction.plugins.node`), that turns every
worker's finished calls into usage-ledger rows and Prometheus samples. By default (``"auto"``) it
runs where the node has a core its workers leave idle: there it takes most of the metrics' cost
off the workers, while on a core they keep busy it would move the cost rather than remove it
(README *The usage relay*).

Why: a row and its samples cost a worker several µs a call on its event loop, and the ledger's
writes came in bursts there (a slower c=1 p99). With the relay a worker keeps its tuple per call
(:data:`~junction.middleware.metrics.events.Finished`) and, at each drain, writes the batch to a
Unix socket as one msgpack frame (about 0.3 µs a call to encode); the relay decodes it into the
same tuples and records them (:class:`~junction.middleware.metrics.record.CallRecorder`) with its
own ledger writer (one writer, one database connection for the whole node) and its own
Prometheus files in the shared multiprocess directory, which every worker's ``/metrics`` reads.
``/metrics`` first asks the relay to write its samples (a :class:`FlushRequest`), so the
answering worker's calls show at once, as without the relay.

A worker records its calls itself whenever the relay is not there: none configured (an app built
in-process, tests), not reachable (it retries every :data:`RECONNECT_SECONDS`), or behind by
more than :data:`MAX_BEHIND` bytes. A relay that dies loses what it had received and not yet
written, as a worker that dies does; a worker whose relay went away records from then on itself.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import signal
import struct
import time
from collections.abc import Callable

import msgspec

from junction.middleware.metrics.events import Finished

#: The environment variable that gives a worker the relay's socket (set by ``junction serve``).
RELAY_ENV = "JUNCTION_USAGE_RELAY"
#: Bytes a worker may have handed the socket and the relay not yet taken; past it the relay is
#: behind, and the worker records its calls itself.
MAX_BEHIND = 16 * 1024 * 1024
#: Seconds between a worker's attempts to reach a relay it lost.
RECONNECT_SECONDS = 1.0
#: Seconds ``/metrics`` waits for the relay to write its samples.
FLUSH_SECONDS = 2.0
#: The largest frame the relay accepts (a drain's slice is ~50 KB).
MAX_FRAME = 64 * 1024 * 1024
_LENGTH = struct.Struct(">I")

log = logging.getLogger("junction.metrics")


class CallsBatch(msgspec.Struct, tag="calls", array_like=True):
    """Finished calls of one worker, for the ledger and the samples."""

    calls: list[Finished]


class FlushRequest(msgspec.Struct, tag="flush", array_like=True):
    """Write the samples to the multiprocess files now (``/metrics`` is about to read them) and
    answer :class:`Flushed` with this ``token``."""

    token: int


class Flushed(msgspec.Struct, tag="flushed", array_like=True):
    token: int


def frame(payload: bytes) -> bytes:
    return _LENGTH.pack(len(payload)) + payload


class _Frames:
    """Length-prefixed frames out of a byte stream."""

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        buffer = self._buffer
        buffer += data
        found = []
        while len(buffer) >= 4:
            (size,) = _LENGTH.unpack_from(buffer)
            if size > MAX_FRAME:
                raise ValueError(f"a usage relay frame of {size} bytes (at most {MAX_FRAME})")
            if len(buffer) < 4 + size:
                break
            found.append(bytes(buffer[4:4 + size]))
            del buffer[:4 + size]
        return found


# --- a worker's side ----------------------------------------------------------------------------

class RelayClient(asyncio.Protocol):
    """A worker's connection to the relay at ``address``."""

    def __init__(self, address: str) -> None:
        self.address = address
        self._transport: asyncio.Transport | None = None
        self._closed: asyncio.Future[None] | None = None
        self._encode = msgspec.msgpack.Encoder().encode
        self._decode = msgspec.msgpack.Decoder(Flushed).decode
        self._frames = _Frames()
        self._tokens = itertools.count()
        self._flushes: dict[int, asyncio.Future[None]] = {}
        self._retry_at = 0.0
        self._connecting: asyncio.Task[bool] | None = None
        self._behind = False
        #: The relay was found out (said once, until it is back).
        self._out = False
        self._closing = False

    async def connect(self) -> bool:
        """Reach the relay; False (said once in the log) when it cannot be reached."""
        loop = asyncio.get_running_loop()
        try:
            await loop.create_unix_connection(lambda: self, self.address)
        except OSError as error:
            self._retry_at = time.monotonic() + RECONNECT_SECONDS
            if not self._out:  # once an outage: a retry a second would fill the log
                self._out = True
                log.warning("usage relay %s not reachable (%s); this worker records its calls itself "
                            "until it is", self.address, error)
            return False
        return True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        self._closed = asyncio.get_running_loop().create_future()
        self._out = False
        log.info("usage relay %s: this worker's calls go there", self.address)

    def connection_lost(self, error: Exception | None) -> None:
        if not self._closing:  # not closed by this worker
            self._out = True
            log.warning("usage relay %s went away (%s); this worker records its calls itself until it is back",
                        self.address, error or "closed")
        self._transport = None
        self._retry_at = time.monotonic() + RECONNECT_SECONDS
        if self._closed is not None and not self._closed.done():
            self._closed.set_result(None)
        for waiting in self._flushes.values():
            if not waiting.done():
                waiting.set_result(None)
        self._flushes.clear()

    def data_received(self, data: bytes) -> None:
        for payload in self._frames.feed(data):
            waiting = self._flushes.pop(self._decode(payload).token, None)
            if waiting is not None and not waiting.done():
                waiting.set_result(None)

    def send(self, calls: list[Finished]) -> bool:
        """Hand ``calls`` to the relay; False when it is not there or behind (record them here)."""
        transport = self._transport
        if transport is None or transport.is_closing():
            self._reconnect()
            return False
        behind = transport.get_write_buffer_size() > MAX_BEHIND
        if behind != self._behind:
            self._behind = behind
            if behind:
                log.warning("usage relay %s is behind; this worker records its calls itself meanwhile", self.address)
        if behind:
            return False
        transport.write(frame(self._encode(CallsBatch(calls))))
        return True

    def _reconnect(self) -> None:
        if self._connecting is None and not self._closing and time.monotonic() >= self._retry_at:
            self._connecting = asyncio.get_running_loop().create_task(self.connect())
            self._connecting.add_done_callback(self._reconnected)

    def _reconnected(self, task: asyncio.Task[bool]) -> None:
        self._connecting = None
        if not task.cancelled():
            task.exception()  # connect() says its own failures

    async def flush(self, timeout: float = FLUSH_SECONDS) -> None:
        """Have the relay write its samples (everything sent before is then in them)."""
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        token = next(self._tokens)
        waiting = self._flushes[token] = asyncio.get_running_loop().create_future()
        transport.write(frame(self._encode(FlushRequest(token))))
        try:
            await asyncio.wait_for(waiting, timeout)
        except TimeoutError:
            self._flushes.pop(token, None)
            log.warning("usage relay %s did not write its samples within %.1f s", self.address, timeout)

    async def close(self, timeout: float = 10.0) -> None:
        """Send what is queued and close (waiting at most ``timeout`` seconds)."""
        self._closing = True
        if self._connecting is not None:
            self._connecting.cancel()
        transport, closed = self._transport, self._closed
        if transport is None or closed is None:
            return
        transport.close()
        try:
            await asyncio.wait_for(asyncio.shield(closed), timeout)
        except TimeoutError:
            transport.abort()
            log.error("usage relay %s: the last calls could not be sent within %.0f s", self.address, timeout)


# --- the relay's side ---------------------------------------------------------------------------

class _Worker(asyncio.Protocol):
    """The relay's end of one worker's connection."""

    def __init__(self, record: Callable[[list[Finished]], None], flush: Callable[[], None]) -> None:
        self._record, self._flush = record, flush
        self._frames = _Frames()
        self._decode = msgspec.msgpack.Decoder(CallsBatch | FlushRequest).decode
        self._encode = msgspec.msgpack.Encoder().encode
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        assert self._transport is not None
        try:
            payloads = self._frames.feed(data)
        except ValueError as error:  # not a worker of this version: drop the connection
            log.error("usage relay: %s; connection closed", error)
            self._transport.abort()
            return
        for payload in payloads:
            try:
                message = self._decode(payload)
                if type(message) is CallsBatch:
                    self._record(message.calls)
                else:
                    self._flush()
                    self._transport.write(frame(self._encode(Flushed(message.token))))
            except Exception:  # one bad batch: say so, go on with the next ones
                log.exception("usage relay: a batch from a worker could not be recorded")


def main(address: str) -> None:
    """The relay process: ``python -m junction.middleware.metrics.relay <socket>`` (a
    :class:`~junction.plugins.node.NodeService`)."""
    # Ctrl-C reaches the whole process group; the relay stops on SIGTERM, once the workers have
    # stopped (and sent their last calls).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    import uvloop

    uvloop.run(_serve(address))


async def _serve(address: str) -> None:
    from junction.logs import configure_logging
    from junction.middleware.metrics.config import MetricsConfig
    from junction.middleware.metrics.prometheus import GatewayMetrics
    from junction.middleware.metrics.record import CallRecorder, priced
    from junction.native_threads import yield_the_core
    from junction.plugins import PluginContext
    from junction.plugins.manager import load_plugins
    from junction.pricing import PriceBook
    from junction.runtime import SqlEngines
    from junction.settings import load_settings
    from junction.stores.metrics.store import MetricsStore

    settings = load_settings()
    configure_logging(settings.logging)
    if settings.server.batch_native_threads:
        # The relay shares the workers' cores: a worker that wakes for a request must not wait for
        # a batch to be recorded first (at the default policy the c=1 p99 was worse than with the
        # worker recording its own calls). One that cannot keep up falls behind, and the workers
        # record their calls themselves past MAX_BEHIND.
        yield_the_core("the usage relay")
    config = msgspec.convert(settings.middleware.get("metrics") or {}, MetricsConfig)
    pricing = PriceBook(settings.pricing)
    load_plugins(settings, context=PluginContext(settings=settings, pricing=pricing), instantiate=False)
    engines = SqlEngines(settings, None)
    ledger = MetricsStore(settings, engines) if config.ledger else None
    prometheus = GatewayMetrics(config.prometheus_flush_seconds, priced(pricing)) if config.prometheus else None
    recorder = CallRecorder(ledger, prometheus, pricing)
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stopping.set)
    if ledger is not None:
        await ledger.start()
    if prometheus is not None:
        await prometheus.start()
    flush = prometheus.flush if prometheus is not None else (lambda: None)
    server = await loop.create_unix_server(lambda: _Worker(recorder.add, flush), address)
    log.info("usage relay (pid %d) listening on %s", os.getpid(), address)
    parent = os.getppid()
    try:
        while not stopping.is_set():  # and not orphaned: a server killed outright never says stop
            try:
                await asyncio.wait_for(stopping.wait(), 1.0)
            except TimeoutError:
                if os.getppid() != parent:
                    log.warning("usage relay: junction serve is gone; stopping")
                    break
    finally:
        server.close()
        if prometheus is not None:
            await prometheus.close()
        if ledger is not None:
            await ledger.close()
        await engines.close()

