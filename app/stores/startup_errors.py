"""A store that cannot be reached at start-up, said in one or two lines: which store, its URL with
the password hidden, the cause and the fix — instead of the driver's traceback (``--debug`` shows
that)."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

from junction.errors import ConfigError


class StoreUnreachable(ConfigError):
    """A configured store could not be reached or used at start-up (stops start-up, exit 2)."""


def redacted(url: str) -> str:
    """``url`` with its password replaced by ``***`` (any scheme: SQL, Redis, AMQP, MongoDB)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    userinfo, _, host = parts.netloc.rpartition("@")
    user = userinfo.split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


_SERVERS = {"postgresql": "PostgreSQL", "redis": "Redis", "rediss": "Redis", "amqp": "RabbitMQ",
            "amqps": "RabbitMQ", "mongodb": "MongoDB"}


def _server(url: str) -> str:
    scheme = urlsplit(url).scheme.split("+", 1)[0]
    return _SERVERS.get(scheme, "the server")


def _causes(error: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


#: The driver's errors of a server that answered and refused: waiting will not mend these.
_REFUSALS = ("InvalidCatalogNameError", "InvalidPasswordError", "InvalidAuthorizationSpecificationError")


def refused_by_the_server(error: BaseException) -> bool:
    """Whether ``error`` says the server answered and refused the URL's database, user or password
    (not that it could not be reached)."""
    return any(type(cause).__name__ in _REFUSALS for cause in _causes(error))


def explain(store: str, url: str, error: BaseException) -> StoreUnreachable | None:
    """The error to stop start-up with, or ``None`` when ``error`` is not a reachability
    problem this module knows (it is then raised as it is)."""
    where = f"stores.{store}: {redacted(url)}"
    for cause in _causes(error):
        name = type(cause).__name__
        if name == "InvalidCatalogNameError":  # asyncpg: the database does not exist
            database = urlsplit(url).path.lstrip("/") or "the database"
            return StoreUnreachable(f"{where}: database {database!r} does not exist. Create it (e.g. "
                               f"`createdb {database}`), then run `junction migrate`")
        if name in ("InvalidPasswordError", "InvalidAuthorizationSpecificationError"):
            return StoreUnreachable(f"{where}: the server refused the user or password ({cause}). Fix the "
                               "credentials in the URL")
        if isinstance(cause, socket.gaierror):
            return StoreUnreachable(f"{where}: cannot resolve the host ({cause.strerror}). Fix the host "
                                    "in the URL")
        if isinstance(cause, (ConnectionError, TimeoutError)) or (
                isinstance(cause, OSError) and cause.errno is not None):
            reason = cause.strerror if isinstance(cause, OSError) and cause.strerror else name
            return StoreUnreachable(f"{where}: cannot connect ({reason}). Start {_server(url)}, or fix the "
                                    "host and port in the URL")
    return None


@contextlib.contextmanager
def explaining(store: str, url: str) -> Iterator[None]:
    """Around a first use of a store: a reachability problem leaves as one :class:`StoreUnreachable`
    (the original as its cause, for ``--debug``); anything else as it is."""
    try:
        yield
    except ConfigError:
        raise
    except Exception as error:  # noqa: BLE001 - explained, or raised unchanged
        explained = explain(store, url, error)
        if explained is None:
            raise
        raise explained from error
