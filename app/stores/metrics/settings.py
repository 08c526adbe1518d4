"""``[metrics]``: the usage ledger's writer and, on TimescaleDB, its policies."""

from __future__ import annotations

import re
from typing import Literal

import msgspec

_INTERVAL = re.compile(r"[1-9][0-9]{0,3} (minute|hour|day|week)s?")
#: What the usage ledger runs on: SQLite (embedded) or PostgreSQL / TimescaleDB, through these drivers.
LEDGER_SCHEMES = ("sqlite+aiosqlite", "postgresql+asyncpg")


class MetricsSettings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    #: Events held in memory while waiting to be written; past it new events are dropped and
    #: counted (``junction_usage_events_dropped_total`` and a log line), never queued unboundedly.
    buffer_size: int = 100_000
    #: A flush starts when this many events wait, or ``flush_seconds`` after the last one.
    batch_size: int = 5_000
    flush_seconds: float = 1.0
    #: Longest wait between retries while the database is down (backoff doubles up to it).
    max_backoff_seconds: float = 30.0
    #: How long shutdown keeps trying to write what is still buffered.
    shutdown_seconds: float = 15.0
    #: ``"auto"``: use TimescaleDB when the database can load it; ``"off"``: plain PostgreSQL.
    #: Decided when the ledger is first migrated.
    timescaledb: Literal["auto", "off"] = "auto"
    #: TimescaleDB only (``junction migrate`` applies changes): chunk width, compression after N
    #: days, and how long raw events and the two aggregates are kept (0: forever).
    chunk_interval: str = "1 day"
    compress_after_days: int = 7
    retain_days: int = 90
    minute_rollup_retain_days: int = 30
    hour_rollup_retain_days: int = 730

    def check(self, source: str, url: str) -> None:
        """These settings, and ``url`` (``[stores] metrics``)."""
        from junction.errors import ConfigError

        scheme = url.partition("://")[0]
        if scheme not in LEDGER_SCHEMES:
            raise ConfigError(f"{source}: stores.metrics: unsupported URL scheme {scheme!r}; use "
                              "sqlite+aiosqlite:// (embedded) or postgresql+asyncpg:// (PostgreSQL or TimescaleDB)")

        for name in ("buffer_size", "batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{source}: metrics.{name}: must be at least 1")
        for name in ("flush_seconds", "max_backoff_seconds"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{source}: metrics.{name}: must be > 0")
        for name in ("compress_after_days", "retain_days", "minute_rollup_retain_days",
                     "hour_rollup_retain_days", "shutdown_seconds"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{source}: metrics.{name}: must not be negative")
        if not _INTERVAL.fullmatch(self.chunk_interval):
            raise ConfigError(f"{source}: metrics.chunk_interval: {self.chunk_interval!r} is not like "
                              "'1 day' or '6 hours'")
        if 0 < self.retain_days <= 3:
            raise ConfigError(f"{source}: metrics.retain_days: must be 0 (forever) or more than 3 "
                              "(the hourly aggregate refreshes the last 3 days)")
