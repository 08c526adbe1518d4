"""One Redis connection that pipelines the per-call store batches of every plugin.

The admission stages (rate limits, budgets, the response cache lookup) send one batch of commands
per call (:mod:`junction.plugins.store_batch`), and settles ride on later batches. Through redis-py each
batch checked a connection out of the pool, built a ``Pipeline``, packed it, and parsed every reply
through its retry, observability and callback layers: about 120 µs of CPU per batch in this
worker, more than the round trip itself (raw: ~10 µs). Here one connection carries every batch:
``execute`` packs the batch's commands at once (no lock, no checkout: Redis answers in order, so
the replies of the batch that went first come first) and waits on a single future that the
connection's protocol resolves when the batch's last reply is parsed. Concurrent batches share the
socket and the reads of its replies, and the batches sent in one turn of the event loop share
writes, eight batches a write (a system call costs about as much as the rest of a batch; one write
for a whole convoy of calls kept Redis from starting until the worker had prepared them all:
:data:`~junction.stores.redis_protocol.WRITE_EVERY`).

Scripts go as ``EVALSHA``: ``pipe.eval(SOURCE, ...)`` is sent by its SHA1, and every script seen is
loaded (``SCRIPT LOAD``) when a connection opens, so a restarted or replaced Redis has them before
the first batch. Should a script still be missing (``SCRIPT FLUSH``), its ``NOSCRIPT`` replies are
sent again as ``EVAL`` in a second round trip (a script that answered ``NOSCRIPT`` did not run).

Prepared scripts: a command whose keys and leading arguments do not change from call to call (a
rate-limit window set, a budget's ledgers) is packed once (:meth:`PipelinedRedis.prepare`) and
sent as ``(prepared, *rest)``: only ``rest`` is packed per call.

Deferred commands (settles, cache stores): :meth:`PipelinedRedis.defer` queues a command on the
connection, not on a plugin: the next batch carries every deferred command, whoever queued it, ahead
of its own (so its admissions count what the calls that ended used, not what they reserved), so
under load they cost no write of their own; when no batch comes within ``settle_delay`` seconds
they go by themselves, all in one write. When nothing is in flight at all (one call at a time),
they go at once instead: a batch that carried them would wait in Redis for them to run. Their
replies, which nobody waits for, are then left unread until the next batch's write (or
:data:`~junction.stores.redis_protocol.PARKED_SECONDS`): read as they came, they woke the idle
worker between two requests (:meth:`~junction.stores.redis_protocol.Connection._park`).

Timeouts: a batch's ``timeout`` is watched by one timer per connection (armed at the oldest
unanswered batch's deadline), not a timer per batch: a batch past its deadline fails with
``TimeoutError`` and its replies are read and dropped when they come.

Failures: a refused connection raises ``OSError``; a lost one fails every batch in flight with
``ConnectionError`` and the next batch reconnects. A caller that stops waiting (its timeout)
leaves its batch's replies to be read and dropped, so the connection stays in step; when a caller
gives up on a batch that has waited longer than :data:`STALE_SECONDS` without an answer, the
connection is presumed hung and closed (the next batch opens a new one). Replies are RESP2:
integers, ``bytes``, ``None``, lists, and ``redis.exceptions.ResponseError`` instances in place of
error replies (errors stay with their own command).
"""

from __future__ import annotations

import asyncio
import hashlib
import ssl
from collections.abc import Callable
from typing import Any

from redis.exceptions import NoScriptError, ResponseError

from junction.stores.redis_protocol import STALE_SECONDS, Command, Connection, Prepared, pack

__all__ = ["STALE_SECONDS", "Command", "OnFailure", "PipelinedRedis", "Prepared", "RecordedBatch"]

#: Hears a deferred command's failure: its error reply, or the exception that failed its batch.
#: (Not its success: a settle's reply says nothing, and a call per reply cost each batch.)
OnFailure = Callable[[BaseException], None]


class PipelinedRedis:
    """The shared pipelining connection of ``[stores] cache`` (see the module docstring)."""

    #: :meth:`execute` takes commands as tuples (the store batch's test for this class, without
    #: importing this module: it imports redis-py, ~10 MB of a worker that has no Redis).
    takes_commands = True

    def __init__(self, url: str, client_name: str = "junction", reply_poll: float = 0.0) -> None:
        from redis.asyncio.connection import SSLConnection, parse_url

        options = parse_url(url)
        self._path: str | None = options.get("path")
        self._host: str = options.get("host", "localhost")
        self._port: int = int(options.get("port", 6379))
        self._ssl: ssl.SSLContext | None = None
        if options.get("connection_class") is SSLConnection:
            self._ssl = ssl.create_default_context()
            if options.get("ssl_cert_reqs") in ("none", ssl.CERT_NONE):
                self._ssl.check_hostname = False
                self._ssl.verify_mode = ssl.CERT_NONE
        hello: list[Command] = []
        if options.get("password") is not None:
            auth = (options["username"], options["password"]) if options.get("username") else (options["password"],)
            hello.append(("AUTH", *auth))
        if int(options.get("db", 0)):
            hello.append(("SELECT", int(options["db"])))
        hello.append(("CLIENT", "SETNAME", client_name))
        self._hello = hello
        #: Script source -> SHA1 (hex, as bytes), for every script sent so far.
        self._scripts: dict[str, bytes] = {}
        self._connection: Connection | None = None
        self._connecting: asyncio.Future[Connection] | None = None
        #: Seconds a deferred command waits for a batch to ride before it goes by itself.
        self.settle_delay = 0.02
        #: Send deferred commands at once when no batch is in flight (see :meth:`_when_idle`).
        self.send_when_idle = True
        #: Seconds at most to poll for the reply of a batch alone in flight before sleeping (0:
        #: never; about as long as such replies take of late: see
        #: :meth:`~junction.stores.redis_protocol.Connection._poll_seconds`), and only while this
        #: says the worker serves exactly one request (the app sets it).
        self.reply_poll = reply_poll
        self.serving_one: Callable[[], bool] = lambda: False
        #: Deferred commands and, in the same order, who hears each one's failure (two lists: a
        #: batch takes the commands as they are, with no list built from pairs).
        self._deferred: list[Command] = []
        self._on_failures: list[OnFailure] = []
        self._deferred_since = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._sending: set[asyncio.Task[None]] = set()

    def pipeline(self, transaction: bool = False) -> RecordedBatch:
        """A recorder with redis-py's pipeline surface (``pipe.eval(...)``, ``pipe.incr(...)``):
        ``await pipe.execute(raise_on_error=False)`` sends it."""
        if transaction:
            raise ValueError("a pipelined batch is never a transaction")
        return RecordedBatch(self)

    def load(self, *scripts: str) -> None:
        """Load these scripts whenever a connection opens (before its first batch)."""
        for script in scripts:
            self.sha(script)

    def sha(self, script: str) -> bytes:
        sha = self._scripts.get(script)
        if sha is None:
            sha = self._scripts[script] = hashlib.sha1(script.encode()).hexdigest().encode()
        return sha

    def prepare(self, script: str, keys: list[str], fixed: list[Any], rest: int,
                numkeys: int | None = None) -> Prepared:
        """``EVALSHA script`` with these ``keys`` and leading arguments ``fixed``, packed now; each
        call adds ``rest`` more arguments (see :class:`Prepared`). ``numkeys``: when the call's
        own arguments begin with keys (none given here), how many keys there are in all."""
        numkeys = len(keys) if numkeys is None else numkeys
        head = pack([("EVALSHA", self.sha(script), numkeys, *keys, *fixed)])
        count = 3 + len(keys) + len(fixed)
        head = b"*%d" % (count + rest) + head[head.index(b"\r\n"):]
        return Prepared(head, script, (numkeys, *keys, *fixed))

    def defer(self, command: Command, on_failure: OnFailure) -> None:
        """Send ``command`` with the next batch, or by itself after ``settle_delay`` seconds
        (see the module docstring); ``on_failure`` hears it if it fails (an error reply, or the
        batch's failure)."""
        deferred = self._deferred
        if not deferred:
            connection = self._connection
            # The open connection's loop: get_running_loop() is a getpid() system call on
            # Python 3.11, and this runs once a batch under load.
            if connection is not None and not connection.closed:
                loop = connection.loop
            else:
                loop = asyncio.get_running_loop()
            self._deferred_since = loop.time()
            if self._timer is None:
                self._timer = loop.call_later(self.settle_delay, self._when_due)
            if self.send_when_idle and connection is not None and connection.idle:
                loop.call_soon(self._when_idle)
        deferred.append(command)
        self._on_failures.append(on_failure)

    def _when_idle(self) -> None:
        # Nothing in flight (one call at a time, say): no batch is coming soon to carry the
        # deferred commands, and one that did would wait for them in Redis. Sent now, they run
        # there while the client reads its answer, off the next call's round trip.
        connection = self._connection
        if self._deferred and connection is not None and connection.idle:
            self._send_deferred()

    @property
    def deferred(self) -> int:
        return len(self._deferred)

    def _when_due(self) -> None:
        # One timer per delay at most: a batch that took the queue leaves it set, and when it
        # fires it sends only what has waited the whole delay, else waits for that turn.
        self._timer = None
        if not self._deferred:
            return
        loop = asyncio.get_running_loop()
        wait = self._deferred_since + self.settle_delay - loop.time()
        if wait > 0.001:
            self._timer = loop.call_later(wait, self._when_due)
            return
        self._send_deferred()

    def _send_deferred(self) -> None:
        if not self._deferred:
            return
        task = asyncio.get_running_loop().create_task(self.execute([]))
        self._sending.add(task)
        task.add_done_callback(self._sent)

    def _sent(self, task: asyncio.Task[Any]) -> None:
        self._sending.discard(task)
        if not task.cancelled():
            task.exception()  # heard by the deferred commands' callbacks already

    async def drain(self, timeout: float = 5.0) -> None:
        """Send the deferred commands now and wait (at most ``timeout`` seconds) for their replies."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._send_deferred()
        if self._sending:
            await asyncio.wait(list(self._sending), timeout=timeout)

    async def execute(self, commands: list[Command], timeout: float | None = None) -> list[Any]:
        """Send ``commands`` (EVALSHA for scripts), and the deferred ones, and return the replies
        of ``commands``, in order. ``timeout``: seconds before the batch fails (``TimeoutError``)."""
        deferred = self._deferred
        if deferred:
            # First: what they settle (a call that ended, its reservations and token estimates
            # replaced by what it used) is then seen by this batch's admissions. Behind them, an
            # admission would still count calls that are over, and refuse one that fits.
            on_failures = self._on_failures
            self._deferred, self._on_failures = [], []
            count = len(deferred)
            if commands:
                deferred += commands
            commands = deferred
        elif not commands:
            return []
        else:
            on_failures = []  # not the live queue: what is deferred meanwhile waits for the next batch
            count = 0
        try:
            connection = self._connection
            if connection is None or connection.closed:
                connection = await self._connect()
            errors_before = connection.error_replies
            replies = await connection.send(commands, timeout, background=count == len(commands))
            # Only a batch that may hold error replies is searched for them (almost none does).
            errors = connection.error_replies != errors_before
            if errors:
                await self._resend_scripts(connection, commands, replies, timeout)
        except Exception as error:
            for on_failure in on_failures:
                on_failure(error)
            raise
        if count:
            if errors:
                for index in range(count):
                    reply = replies[index]
                    if isinstance(reply, BaseException):
                        on_failures[index](reply)
            del replies[:count]
        return replies

    async def _resend_scripts(self, connection: Connection, commands: list[Command], replies: list[Any],
                              timeout: float | None) -> None:
        """Send the commands that answered ``NOSCRIPT`` (the script cache was flushed) again with
        their source (``EVAL``): they did not run. Their replies replace those in ``replies``."""
        missing = [index for index, reply in enumerate(replies) if type(reply) is NoScriptError]
        if not missing:
            return
        again = [self._with_source(commands[index]) for index in missing]
        for index, reply in zip(missing, await connection.send(again, timeout), strict=True):
            replies[index] = reply

    def _with_source(self, command: Command) -> Command:
        first = command[0]
        if type(first) is Prepared:
            return ("EVAL", first.source, *first.fixed, *command[1:])
        sources = {sha: source for source, sha in self._scripts.items()}
        return ("EVAL", sources[command[1]], *command[2:])

    async def connect(self, timeout: float = 10.0) -> None:
        """Open the connection (and load the known scripts) now rather than on the first batch."""
        if self._connection is None or self._connection.closed:
            async with asyncio.timeout(timeout):
                await self._connect()

    def _new_connection(self) -> Connection:
        return Connection(self.reply_poll, lambda: self.serving_one())

    async def _connect(self) -> Connection:
        if self._connecting is not None:
            return await asyncio.shield(self._connecting)
        loop = asyncio.get_running_loop()
        self._connecting = loop.create_future()
        connection: Connection | None = None
        try:
            if self._path is not None:
                _, connection = await loop.create_unix_connection(self._new_connection, self._path, ssl=self._ssl)
            else:
                _, connection = await loop.create_connection(self._new_connection, self._host, self._port,
                                                             ssl=self._ssl)
            loading = [("SCRIPT", "LOAD", source) for source in self._scripts]
            for reply in await connection.send(self._hello + loading, None):
                if isinstance(reply, ResponseError):
                    raise ConnectionError(f"Redis refused the connection's set-up: {reply}")
        except BaseException as error:
            if connection is not None:  # set up halfway (refused, or its caller gave up): not kept
                connection.abort(ConnectionError("the Redis connection's set-up did not finish"))
            self._connecting.set_exception(error if isinstance(error, Exception) else ConnectionError(str(error)))
            self._connecting.exception()  # retrieved: nobody else may be waiting
            raise
        else:
            self._connection = connection
            self._connecting.set_result(connection)
            return connection
        finally:
            self._connecting = None

    async def aclose(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._connection is not None:
            self._connection.abort(ConnectionError("the Redis connection was closed"))
            self._connection = None


class RecordedBatch:
    """Records a batch's commands for :meth:`PipelinedRedis.execute` (redis-py's pipeline surface)."""

    __slots__ = ("_owner", "_commands")

    def __init__(self, owner: PipelinedRedis) -> None:
        self._owner = owner
        self._commands: list[Command] = []

    def eval(self, script: str, numkeys: int, *keys_and_args: Any) -> RecordedBatch:
        self._commands.append(("EVALSHA", self._owner.sha(script), numkeys, *keys_and_args))
        return self

    def __getattr__(self, name: str) -> Any:  # incr, get, set, ...: positional arguments only
        command = name.upper()

        def record(*args: Any) -> RecordedBatch:
            self._commands.append((command, *args))
            return self

        return record

    def take(self) -> Command:
        """The one command recorded since the last ``take`` (a store batch's callable command)."""
        (command,) = self._commands
        self._commands = []
        return command

    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        if raise_on_error:
            raise ValueError("a pipelined batch returns errors in place (raise_on_error=False)")
        commands, self._commands = self._commands, []
        return await self._owner.execute(commands) if commands else []
