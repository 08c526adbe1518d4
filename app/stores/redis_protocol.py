"""The wire side of :mod:`junction.stores.redis_pipeline`: one socket to Redis (an asyncio
protocol) that writes batches in order, parses RESP2 replies and hands each batch its own, and
the packing of commands (with :class:`Prepared` heads packed once).

Replies are integers, ``bytes``, ``None``, lists, and ``redis.exceptions.ResponseError`` instances
in place of error replies (errors stay with their own command). They are parsed by hiredis's C
reader: a call's replies (three script answers, the settles') took about 15 µs of this worker's
CPU to parse in Python, under 3 µs there.
"""

from __future__ import annotations

import asyncio
import os
import select
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import hiredis
from redis.exceptions import NoScriptError, ResponseError

#: A batch unanswered for this long when a caller gives up on it marks the connection as hung.
STALE_SECONDS = 1.0

#: Batches made in one turn of the loop go out in writes of this many. One write for all of a
#: convoy (32 calls arriving together) left the worker's core idle while Redis ran every call's
#: scripts, then Redis idle while the worker ran every call on: in writes of eight, Redis starts on
#: the first calls while the worker still prepares the rest (+8 to +13% RPS at 32 connections with
#: writes of four, and eight ahead of four by 2.7% and 6.5% with either in either slot of the A/B:
#: README *Rate limits and budgets*). A write per batch cost a system call each and measured
#: worse; sixteen measured as eight.
WRITE_EVERY = 8

#: Bytes a lone batch's reply is read in at once when the poll sees it (see
#: :meth:`Connection._read_now`); a longer reply's rest comes through the loop, as every reply did.
READ_NOW_BYTES = 64 * 1024

#: Seconds the replies of background batches may wait unread (see :meth:`Connection._park`).
PARKED_SECONDS = 0.02

#: A lone batch polls for its reply this many times as long as such a round trip has taken of
#: late (its mean), within the connection's ``reply_poll`` (see :meth:`Connection._poll_seconds`).
POLL_MARGIN = 1.5
#: Weight of the newest round trip in that mean.
ROUND_TRIP_WEIGHT = 0.125

Command = tuple[Any, ...]


class Prepared:
    """A script call whose keys and leading arguments are packed once (see the module docstring):
    send it as ``(prepared, *rest)`` with ``rest`` the remaining ``rest`` arguments."""

    __slots__ = ("head", "source", "fixed")

    def __init__(self, head: bytes, source: str, fixed: tuple[Any, ...]) -> None:
        self.head, self.source, self.fixed = head, source, fixed


class _Batch:
    __slots__ = ("count", "replies", "future", "sent", "deadline", "background", "written")

    def __init__(self, count: int, future: asyncio.Future[list[Any]], sent: float, deadline: float,
                 background: bool) -> None:
        self.count, self.future, self.sent, self.deadline = count, future, sent, deadline
        self.background = background
        self.replies: list[Any] = []
        #: ``perf_counter()`` when a lone batch (one a request waits for alone) was written, else 0.
        self.written = 0.0


class Connection(asyncio.Protocol):
    """One socket to Redis: batches written in order, replies parsed and handed out in order.

    ``reply_poll``: seconds at most to poll for the reply of a batch that is alone in flight, when
    ``serving_one()`` says the worker serves exactly one request, before the loop sleeps (see
    :meth:`_await_lone_reply` and :meth:`_poll_seconds`); 0: never."""

    def __init__(self, reply_poll: float = 0.0, serving_one: Callable[[], bool] = lambda: False) -> None:
        self._transport: asyncio.Transport | None = None
        self._reply_poll = reply_poll
        self._serving_one = serving_one
        #: Mean seconds from a lone batch's write to its reply, of late (None: none measured yet).
        self.round_trip: float | None = None
        self._poller: select.poll | None = None
        #: The socket's file descriptor, read in place once a lone batch's poll sees its reply
        #: (-1: not polling, or TLS, whose bytes only the transport can decrypt).
        self._fd = -1
        #: The event loop it runs on (set with the transport, in ``connection_made``).
        self.loop: asyncio.AbstractEventLoop
        self._reader = hiredis.Reader(replyError=ResponseError)
        self._waiting: deque[_Batch] = deque()
        self.closed = False
        #: Error replies read so far (each stays in place of its command's reply): a batch whose
        #: count did not move while it was in flight holds none, and is not searched for them.
        self.error_replies = 0
        self._watch: asyncio.TimerHandle | None = None
        #: Background batches among those waiting (see :meth:`send`).
        self._background = 0
        #: While the transport does not read (parked background replies): the timer that resumes it.
        self._parked: asyncio.TimerHandle | None = None
        #: Packed batches not yet written: those of one turn of the loop go in writes of
        #: :data:`WRITE_EVERY`, the rest at the end of the turn.
        self._unwritten: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if self._reply_poll > 0 and sock is not None and hasattr(select, "poll"):
            self._poller = select.poll()
            self._poller.register(sock.fileno(), select.POLLIN)
            if transport.get_extra_info("sslcontext") is None:
                self._fd = sock.fileno()
        # Kept: asyncio.get_running_loop() is a getpid() system call on Python 3.11, once a batch.
        self.loop = asyncio.get_running_loop()

    def connection_lost(self, error: Exception | None) -> None:
        self._fail(ConnectionError(f"the Redis connection was lost: {error or 'closed by the server'}"))

    def abort(self, error: Exception) -> None:
        if self._transport is not None:
            self._transport.abort()
        self._fail(error)

    def _fail(self, error: Exception) -> None:
        self.closed = True
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None
        if self._parked is not None:
            self._parked.cancel()
            self._parked = None
        self._background = 0
        while self._waiting:
            future = self._waiting.popleft().future
            if not future.done():
                future.set_exception(error)
                future.exception()  # retrieved here: a caller that gave up never reads it

    async def send(self, commands: list[Command], timeout: float | None, background: bool = False) -> list[Any]:
        """Write ``commands`` and return their replies. ``background``: nobody waits on the
        replies to answer a request (deferred settles, cache fills): a write of such batches
        alone leaves their replies unread for a while (:meth:`_park`)."""
        if self.closed or self._transport is None:
            raise ConnectionError("the Redis connection is closed")
        # Packed before the batch is queued: an argument that cannot be sent (a TypeError) must
        # leave no batch waiting for replies that will never come, which would put every later
        # batch's replies out of step.
        packed = pack(commands)
        loop = self.loop
        future: asyncio.Future[list[Any]] = loop.create_future()
        now = loop.time()
        batch = _Batch(len(commands), future, now, now + timeout if timeout is not None else _NEVER, background)
        self._waiting.append(batch)
        if background:
            self._background += 1
        if self._watch is None and timeout is not None:
            self._watch = loop.call_at(batch.deadline, self._check_deadlines)
        unwritten = self._unwritten
        unwritten.append(packed)
        if len(unwritten) >= WRITE_EVERY or (not background and self._poller is not None
                                             and len(self._waiting) - self._background == 1
                                             and self._serving_one()):
            # Alone, with the worker serving this one request: no other batch will join this turn's
            # write, so it goes now, and when the poll reads the reply in place (_read_now), the
            # future is done before the await below, which then returns without a turn of the loop.
            self._write()
        elif len(unwritten) == 1:
            loop.call_soon(self._write)
        try:
            return await future
        except asyncio.CancelledError:
            head = self._waiting[0] if self._waiting else None
            if head is not None and loop.time() - head.sent > STALE_SECONDS:
                self.abort(ConnectionError("Redis stopped answering; the connection was closed"))
            raise

    @property
    def idle(self) -> bool:
        """No batch is waiting for its replies or for its write."""
        return not self._waiting and not self._unwritten and not self.closed

    def _write(self) -> None:
        # A write is a system call (on loopback TCP, about the cost of the rest of a batch):
        # batches of concurrent calls made in the same turn of the loop share one (up to
        # WRITE_EVERY of them; an earlier write may have taken them all).
        unwritten, self._unwritten = self._unwritten, []
        transport = self._transport
        if unwritten and not self.closed and transport is not None:
            if self._parked is not None:
                self._unpark()
            transport.write(unwritten[0] if len(unwritten) == 1 else b"".join(unwritten))
            waiting = self._waiting
            foreground = len(waiting) - self._background
            if foreground == 0:
                self._park(transport)
            elif (foreground == 1 and self._poller is not None and not waiting[-1].background
                  and self._serving_one()):
                batch = waiting[-1]
                batch.written = time.perf_counter()
                seconds = self._poll_seconds()
                if seconds:
                    self._await_lone_reply(self._poller, batch, batch.written + seconds)

    def _poll_seconds(self) -> float:
        """How long a lone batch polls for its reply: :data:`POLL_MARGIN` times the mean round
        trip of such batches of late, at most ``reply_poll``; not at all once that mean is longer
        than ``reply_poll`` (a Redis across a network, a slow host: the reply would mostly come
        after the poll, which would then only have spent the CPU and held up a request arriving
        meanwhile). A fixed bound polled in vain where round trips outlast it (176 µs on a slow
        host against 100), and gave up on the slower replies where they are about as long
        (README *Rate limits and budgets*)."""
        mean = self.round_trip
        if mean is None:
            return self._reply_poll
        if mean > self._reply_poll:
            return 0.0
        return min(self._reply_poll, POLL_MARGIN * mean)

    def _park(self, transport: asyncio.Transport) -> None:
        """Leave the replies of the background batches just written unread for a while: the
        next batch's write reads them with its own, else :data:`PARKED_SECONDS` from now. Read
        as they came, each woke the worker (its CPU halted, idle between two requests) just to
        parse replies nobody waits for; at one request at a time that cost the next request about
        45 µs (README *Rate limits and budgets*). Their failures are heard that much later."""
        transport.pause_reading()
        self._parked = self.loop.call_later(PARKED_SECONDS, self._unpark)

    def _unpark(self) -> None:
        if self._parked is not None:
            self._parked.cancel()
            self._parked = None
        if not self.closed and self._transport is not None:
            self._transport.resume_reading()

    def _await_lone_reply(self, poller: select.poll, batch: _Batch, deadline: float) -> None:
        """Poll for the reply of ``batch``, the one batch in flight a request waits for (replies of
        background batches may come first), until ``deadline`` (``perf_counter()``) at most,
        reading what comes in place, before returning to the loop. With one request in the
        worker, waiting for this reply, there is nothing else to do: the loop would sleep in its
        wait, and a CPU that halts when idle (a VM's vCPU) wakes tens of µs after the reply came.
        A round trip at one call at a time took about 110 µs here that way, 45 polling (README
        *Rate limits and budgets*). Not with two or more requests in the worker (it would hold up the others'
        work; under load batches overlap anyway), nor with none: what is written after an answer
        went out (settles, a cache fill) has nobody waiting for it, and polling for it held up the
        next request (4-10% fewer RPS at two to four connections, when it did)."""
        fd = self._fd
        while True:
            if poller.poll(0):
                # Read in place; replies of background batches written before may come first.
                if fd < 0 or not self._read_now(fd) or batch.future.done():
                    return
            if time.perf_counter() >= deadline:
                return

    def _read_now(self, fd: int) -> bool:
        """Read the reply the poll saw, and parse it, now. Left to the loop, it took another turn
        (its wait, its read) before ``data_received`` and a third for the caller's task to resume:
        about 20 µs of a 110 µs round trip at one call at a time here (README *Rate limits and
        budgets*). The loop reads the same socket too, and finds what is read here gone: a read
        that would block returns at once, and an error or the peer's close is left for its read
        to find (``connection_lost``). Says whether it read anything."""
        try:
            data = os.read(fd, READ_NOW_BYTES)
        except OSError:
            return False
        if not data:
            return False
        self.data_received(data)
        return True

    def _check_deadlines(self) -> None:
        """Fail the batches past their deadline (their replies are dropped when they come); a
        connection whose oldest batch is unanswered after :data:`STALE_SECONDS` is closed."""
        self._watch = None
        loop = asyncio.get_running_loop()
        now = loop.time()
        following = _NEVER
        for batch in self._waiting:
            if batch.future.done():
                continue
            if batch.deadline <= now:
                batch.future.set_exception(TimeoutError("Redis did not answer in time"))
                batch.future.exception()  # retrieved: its caller may have gone
            else:
                following = min(following, batch.deadline)
        if self._waiting and now - self._waiting[0].sent > STALE_SECONDS:
            self.abort(ConnectionError("Redis stopped answering; the connection was closed"))
            return
        if following < _NEVER:
            self._watch = loop.call_at(following, self._check_deadlines)

    def data_received(self, data: bytes) -> None:
        reader, waiting = self._reader, self._waiting
        reader.feed(data)
        try:
            while waiting:
                reply = reader.gets()
                if reply is False:  # the rest of a reply is still to come
                    break
                if type(reply) is ResponseError:
                    self.error_replies += 1
                    if str(reply).startswith("NOSCRIPT"):
                        reply = NoScriptError(str(reply))
                batch = waiting[0]
                batch.replies.append(reply)
                if len(batch.replies) == batch.count:
                    waiting.popleft()
                    if batch.background:
                        self._background -= 1
                    elif batch.written:  # polled for or not: what the next lone batch polls by
                        took = time.perf_counter() - batch.written
                        mean = self.round_trip
                        self.round_trip = took if mean is None else mean + ROUND_TRIP_WEIGHT * (took - mean)
                    if not batch.future.done():  # not abandoned by its caller
                        batch.future.set_result(batch.replies)
        except hiredis.ProtocolError as error:
            self.abort(ConnectionError(f"unreadable reply from Redis: {error}"))


#: The deadline of a batch sent without a timeout.
_NEVER = float("inf")


def pack(commands: list[Command]) -> bytes:
    """RESP arrays of bulk strings, every command of the batch in one buffer. Each command is
    packed by hiredis's C packer (bytes, str, int and float; anything else is a ``TypeError``): a
    call's batch of six commands took 7.1 µs in Python, 5.8 there. A :class:`Prepared` command's
    head is packed already: only its own arguments are, without the array header hiredis gives them."""
    parts: list[bytes] = []
    append = parts.append
    for command in commands:
        first = command[0]
        if type(first) is Prepared:
            append(first.head)
            rest = _pack_command(command[1:])
            # Without hiredis's array header: ``*N\r\n``, four bytes for fewer than ten arguments
            # (a call's batch took 0.7 µs less so than looking for its end).
            append(rest[4:] if len(command) < 11 else rest[rest.index(b"\n") + 1:])
        else:
            append(_pack_command(command))
    return b"".join(parts)


_pack_command = hiredis.pack_command
