"""Change notifications for hot reload: "record (kind, id) changed, drop what you cached".

A :class:`ChangeBus` is chosen by the ``[stores] cache`` URL: ``memory://`` delivers inside this
process (the single-node embedded default), ``redis://`` / ``rediss://`` uses Redis pub/sub so
every worker of every node hears every change. Delivery is at-most-once, and every gap is
announced: subscribers receive :data:`EVERYTHING` (kind ``"*"``), meaning "you may have missed
changes — drop all caches",

* when their own Redis connection drops and comes back (they may have missed anything), and
* when a publish fails (say this node lost Redis while the others kept it): this process's
  subscribers hear the change at once, and every subscriber everywhere hears ``*`` as soon as
  Redis is reachable from here again — without it, the other nodes would never learn of the gap.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, runtime_checkable

import msgspec

from junction.errors import ConfigError, JunctionError
from junction.stores.startup_errors import StoreUnreachable, redacted
from junction.tasks import end_if_cancel_dropped, stop

log = logging.getLogger("junction.stores.notify")

CHANNEL = "junction:changes"
RECONNECT_DELAY_SECONDS = 0.5
START_TIMEOUT_SECONDS = 10.0
#: A publish waits no longer: the caller's data is already saved, and a gap is announced anyway.
PUBLISH_TIMEOUT_SECONDS = 2.0
#: The bus is trusted while Redis confirmed this worker's subscription (a message, or the answer to
#: a ping) this recently; after that, caches that rely on it re-read what they serve (see
#: :meth:`ChangeBus.trusted`). The same ~1 s a change takes to reach every worker when it is up.
TRUST_SECONDS = 1.0
#: An idle subscription pings Redis this often, so a silent bus is known to be alive.
HEARTBEAT_SECONDS = 0.25


class Change(msgspec.Struct, frozen=True):
    kind: str
    id: str


class _Notice(msgspec.Struct, frozen=True):
    """A change as it travels on the channel, with the bus that published it (``origin``): that bus
    told its own subscribers already, so it skips the echo. Nodes of older versions ignore
    ``origin`` and send none (``""``: everyone delivers it)."""

    kind: str
    id: str
    origin: str = ""


#: Delivered after a possible gap in notifications: every cache should be dropped.
EVERYTHING = Change("*", "*")

ChangeCallback = Callable[[Change], Awaitable[None] | None]
Unsubscribe = Callable[[], None]


class ChangeNotPublished(JunctionError):
    """The change bus could not send a change (Redis unreachable); a ``*`` follows when it can."""


@runtime_checkable
class ChangeBus(Protocol):
    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def publish(self, kind: str, id: str) -> None:
        """Tell every subscriber (in every process sharing the bus) that ``kind``/``id`` changed.

        Raises :class:`ChangeNotPublished` when the change could not be sent; the bus has then
        arranged for every subscriber to hear :data:`EVERYTHING` once it can.
        """
        ...

    async def ping(self) -> None:
        """Raise unless the bus's backend answers now (``/readyz`` calls it)."""
        ...

    def trusted(self) -> bool:
        """Whether every change published anywhere reaches this process now. While it does not
        (Redis unreachable, or silent for :data:`TRUST_SECONDS`), caches kept honest by the bus
        must not serve entries older than that: revocation then holds through an outage."""
        ...

    def subscribe(self, callback: ChangeCallback) -> Unsubscribe:
        """Call ``callback(change)`` (sync or async) for every change; returns the unsubscriber."""
        ...


class _Subscribers:
    """The callbacks of one bus and their dispatch; a failing callback is logged, not fatal."""

    def __init__(self) -> None:
        self._callbacks: list[ChangeCallback] = []

    def add(self, callback: ChangeCallback) -> Unsubscribe:
        self._callbacks.append(callback)
        return lambda: self._callbacks.remove(callback) if callback in self._callbacks else None

    async def deliver(self, change: Change) -> None:
        for callback in list(self._callbacks):
            try:
                result = callback(change)
                if inspect.isawaitable(result):
                    await result
            except Exception:  # one broken cache must not stop the others hearing the change
                log.exception("change subscriber %r failed on %s/%s", callback, change.kind, change.id)


class MemoryChangeBus:
    """In-process delivery, for a single worker."""

    def __init__(self) -> None:
        self._subscribers = _Subscribers()

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def publish(self, kind: str, id: str) -> None:
        await self._subscribers.deliver(Change(kind, id))

    async def ping(self) -> None:
        return None

    def trusted(self) -> bool:
        return True  # in-process delivery cannot be cut; other processes' changes never arrive anyway

    def subscribe(self, callback: ChangeCallback) -> Unsubscribe:
        return self._subscribers.add(callback)


class RedisChangeBus:
    """Redis pub/sub on one channel; a background task listens and reconnects after failures.

    Given ``client`` (the process's shared one), it publishes and listens through its pool and
    leaves closing it to its owner; else it opens a client of its own for ``url``.
    """

    def __init__(self, url: str, channel: str = CHANNEL, client_name: str = "junction-changes", *,
                 client: Any | None = None) -> None:
        self.url = url
        self.channel = channel
        #: Shown by ``CLIENT LIST``, so an operator can tell these connections apart.
        self.client_name = client_name
        self._subscribers = _Subscribers()
        self._shared = client
        self._redis = None
        self._listener: asyncio.Task[None] | None = None
        self._gap_announcer: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()
        #: When Redis last confirmed the subscription (monotonic seconds); 0: never.
        self._confirmed = 0.0
        self._distrust_logged = False
        self._encoder = msgspec.json.Encoder()
        self._decoder = msgspec.json.Decoder(_Notice)
        #: Marks this bus's own notices on the channel (see :class:`_Notice`).
        self._origin = secrets.token_hex(8)

    async def start(self) -> None:
        if self._shared is not None:
            self._redis = self._shared
        else:
            import redis.asyncio as redis

            self._redis = redis.Redis.from_url(self.url, client_name=self.client_name)
        self._listener = asyncio.create_task(self._listen(), name="junction-change-listener")
        # Return only once subscribed, so a change published right after start() is not missed.
        try:
            async with asyncio.timeout(START_TIMEOUT_SECONDS):  # not wait_for: see junction.tasks
                await self._subscribed.wait()
        except TimeoutError:
            await self.close()
            raise StoreUnreachable(
                f"stores.cache: {redacted(self.url)}: cannot subscribe within {START_TIMEOUT_SECONDS:g}s. "
                "Start Redis, or fix the URL"
            ) from None

    async def ping(self) -> None:
        if self._redis is None:
            raise RuntimeError("the change bus is not started")
        await self._redis.ping()
        if not self.trusted():
            raise RuntimeError(f"change bus: subscription not confirmed for {self._silence():.1f}s; key, "
                               "credential and bridge caches read through to the store")

    def trusted(self) -> bool:
        return time.monotonic() - self._confirmed < TRUST_SECONDS

    def _silence(self) -> float:
        return time.monotonic() - self._confirmed

    def _confirm(self) -> None:
        self._confirmed = time.monotonic()
        if self._distrust_logged:
            self._distrust_logged = False
            log.warning("change bus: Redis confirmed the subscription again; caches trusted again")

    def _report_distrust(self, reason: str) -> None:
        if not self._distrust_logged:
            self._distrust_logged = True
            log.warning("change bus: %s; key, credential and bridge caches read through to the store "
                        "(entries older than %gs are re-read) until Redis is back", reason, TRUST_SECONDS)

    async def close(self) -> None:
        for task in (self._listener, self._gap_announcer):
            if task is not None:
                await stop(task)
        self._listener = self._gap_announcer = None
        if self._redis is not None and self._shared is None:
            await self._redis.aclose()
        self._redis = None

    async def publish(self, kind: str, id: str) -> None:
        from redis.exceptions import RedisError

        assert self._redis is not None, "RedisChangeBus.publish before start()"
        # Our own subscribers first, at once, not when the channel echoes it: the same client's
        # next request, served by this worker, must not find what this change dropped (a bridge
        # created after a lookup of its slug was cached as a miss answered 404 until the echo).
        await self._subscribers.deliver(Change(kind, id))
        try:
            async with asyncio.timeout(PUBLISH_TIMEOUT_SECONDS):
                await self._redis.publish(self.channel, self._encoder.encode(_Notice(kind, id, self._origin)))
        except (RedisError, OSError, TimeoutError) as error:
            # Everyone else hears "*" once Redis is back.
            self._announce_gap()
            raise ChangeNotPublished(
                f"change {kind}/{id} not published on {self.channel} ({type(error).__name__}: {error})"
            ) from error

    def _announce_gap(self) -> None:
        if self._gap_announcer is None or self._gap_announcer.done():
            self._gap_announcer = asyncio.create_task(
                self._publish_everything_when_reachable(), name="junction-change-gap-announcer"
            )

    async def _publish_everything_when_reachable(self) -> None:
        from redis.exceptions import RedisError

        assert self._redis is not None
        while True:
            end_if_cancel_dropped()
            try:
                async with asyncio.timeout(PUBLISH_TIMEOUT_SECONDS):
                    await self._redis.publish(self.channel, self._encoder.encode(EVERYTHING))
            except (RedisError, OSError, TimeoutError) as error:
                log.debug("Redis still unreachable for the change bus (%s); retrying", type(error).__name__)
                await asyncio.sleep(RECONNECT_DELAY_SECONDS)
                continue
            log.warning("change bus reached Redis again; told every subscriber to drop all caches")
            return

    def subscribe(self, callback: ChangeCallback) -> Unsubscribe:
        return self._subscribers.add(callback)

    async def _listen(self) -> None:
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import TimeoutError as RedisTimeoutError

        connected_before = False
        while True:
            end_if_cancel_dropped()
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                if connected_before:
                    await self._subscribers.deliver(EVERYTHING)
                connected_before = True
                self._confirm()
                self._subscribed.set()
                while True:
                    end_if_cancel_dropped()
                    message = await pubsub.get_message(timeout=HEARTBEAT_SECONDS)
                    if message is None:
                        if not self.trusted():
                            self._report_distrust(f"no answer from Redis for {self._silence():.1f}s")
                        await pubsub.ping()  # its answer arrives as a "pong" message
                        continue
                    self._confirm()
                    if message.get("type") != "message":
                        continue
                    try:
                        notice = self._decoder.decode(message["data"])
                    except msgspec.DecodeError:
                        log.warning("ignoring malformed change notification on %s", self.channel)
                        continue
                    if notice.origin != self._origin:  # our own were delivered when published
                        await self._subscribers.deliver(Change(notice.kind, notice.id))
            except (RedisConnectionError, RedisTimeoutError, OSError) as error:
                log.warning("change bus lost Redis (%s); reconnecting", error)
                self._report_distrust("subscription lost")
                await asyncio.sleep(RECONNECT_DELAY_SECONDS)
            finally:
                await pubsub.aclose()


REDIS_SCHEMES = frozenset({"redis", "rediss", "unix"})


def is_redis_url(url: str) -> bool:
    return url.split(":", 1)[0].lower() in REDIS_SCHEMES


def open_change_bus(url: str, client: Any | None = None) -> ChangeBus:
    """The bus for a ``[stores] cache`` URL; call ``start()`` inside the serving event loop.
    ``client``: the process's shared Redis client, for a ``redis://`` URL."""
    scheme = url.split(":", 1)[0].lower()
    if scheme == "memory":
        return MemoryChangeBus()
    if scheme in REDIS_SCHEMES:
        return RedisChangeBus(url, client=client)
    raise ConfigError(f"stores.cache: unsupported URL scheme {scheme!r} (memory:// or redis://)")
