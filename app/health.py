"""``/healthz`` (the process answers) and ``/readyz`` (every configured backend is reachable)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from urllib.parse import urlsplit

import msgspec
from litestar import Response, get
from litestar.handlers import HTTPRouteHandler

from junction.settings import StoreSettings

_DEFAULT_PORTS = {"postgresql": 5432, "postgres": 5432, "redis": 6379, "rediss": 6380, "amqp": 5672,
                  "amqps": 5671, "mongodb": 27017}


class CheckResult(msgspec.Struct):
    store: str
    url_scheme: str
    ok: bool
    detail: str = ""


class Readiness(msgspec.Struct):
    status: str
    checks: list[CheckResult]


async def check_store(store: str, url: str, timeout: float = 2.0) -> CheckResult:
    """For stores this process has not opened: memory stores are always ready, SQLite needs a
    writable directory, network stores must accept a TCP connection."""
    parts = urlsplit(url)
    scheme = parts.scheme.split("+", 1)[0]
    if scheme == "memory":
        return CheckResult(store, scheme, True)
    if scheme == "sqlite":
        raw = url.split(":///", 1)[1] if ":///" in url else ""
        directory = Path(raw).parent if raw and raw != ":memory:" else Path(".")
        writable = directory.is_dir() and bool(directory.stat().st_mode & 0o222)
        return CheckResult(store, scheme, writable, "" if writable else f"{directory} is not a writable directory")
    host = parts.hostname or "127.0.0.1"
    port = parts.port or _DEFAULT_PORTS.get(scheme)
    if port is None:
        return CheckResult(store, scheme, False, f"unknown scheme {scheme!r}")
    try:
        async with asyncio.timeout(timeout):  # not wait_for: on 3.11 it can drop a cancel
            _, writer = await asyncio.open_connection(host, port)
    except (OSError, asyncio.TimeoutError) as error:
        return CheckResult(store, scheme, False, f"{host}:{port} unreachable: {error}")
    writer.close()
    return CheckResult(store, scheme, True)


Probe = Callable[[], Awaitable[None]]


async def run_probe(store: str, url: str, probe: Probe, timeout: float = 2.0) -> CheckResult:
    """A store that is open in this process answers a real round trip (``SELECT 1``, ``PING``)."""
    scheme = urlsplit(url).scheme.split("+", 1)[0]
    try:
        async with asyncio.timeout(timeout):
            await probe()
    except Exception as error:  # any failure means "not ready"; the reason is reported, not raised
        return CheckResult(store, scheme, False, f"{type(error).__name__}: {error}"[:300])
    return CheckResult(store, scheme, True)


def health_routes(stores: StoreSettings, probes: Mapping[str, Probe]) -> list[HTTPRouteHandler]:
    """``probes`` ping the stores this process has open, by store name; the others are checked
    for reachability only."""

    @get("/healthz", summary="Liveness")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @get("/readyz", summary="Readiness of every configured backend")
    async def readyz() -> Response[Readiness]:
        checks = await asyncio.gather(*(
            run_probe(name, getattr(stores, name), probes[name]) if name in probes
            else check_store(name, getattr(stores, name))
            for name in StoreSettings.__struct_fields__))
        ready = all(check.ok for check in checks)
        return Response(Readiness("ready" if ready else "unavailable", list(checks)),
                        status_code=200 if ready else 503)

    return [healthz, readyz]
