"""The SQL schema of the metrics store (SQLAlchemy Core): the usage ledger and its rollups.

``usage_events`` holds one row per call. The rollup tables (``usage_rollup_minute``,
``usage_rollup_hour``) hold per-bucket sums by org, key, bridge, provider and model, which the
analytics API reads instead of scanning events. On SQLite and plain PostgreSQL the usage writer
maintains them (an upsert per flushed batch); on TimescaleDB they are not used: continuous
aggregates with the same columns (``usage_minute``, ``usage_hour``) take their place.

Latency percentiles cannot be summed, so every rollup row carries a latency histogram:
``lat_00`` .. ``lat_40`` count the calls whose latency fell in each bucket of
:data:`LATENCY_BOUNDS_MS` (log-spaced, ratio 1.35; the last one is open-ended). The analytics API
interpolates p50 / p95 inside the bucket, so a percentile is exact to within one bucket's width.
The migrations in ``migrations/metrics`` create exactly this.
"""

from __future__ import annotations

from bisect import bisect_right

import sqlalchemy as sa

from junction.stores.documents.sql import UTCDateTime

#: Alembic's bookkeeping table for this store (it may share a database with the documents store).
VERSION_TABLE = "junction_metrics_version"

#: Upper bounds (ms) of the latency histogram's buckets; bucket ``i`` holds latencies in
#: ``[LATENCY_BOUNDS_MS[i-1], LATENCY_BOUNDS_MS[i])``, the last bucket everything above.
LATENCY_BOUNDS_MS: tuple[float, ...] = tuple(round(1.35**i, 3) for i in range(1, 41))
HISTOGRAM_COLUMNS: tuple[str, ...] = tuple(f"lat_{index:02d}" for index in range(len(LATENCY_BOUNDS_MS) + 1))

#: The dimensions rollups are kept by, in order (``''`` stands for "none" in rollup rows).
DIMENSIONS: tuple[str, ...] = ("org_id", "key_id", "bridge_id", "provider", "model")
#: The summed measures of a rollup row (besides the histogram).
MEASURES: tuple[str, ...] = (
    "requests", "errors", "cache_hits", "priced_requests", "input_tokens", "output_tokens",
    "cached_tokens", "cache_write_tokens", "reasoning_tokens", "cost_usd", "latency_ms_sum",
)

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "pk": "pk_%(table_name)s",
    }
)

Text = sa.String(200)

usage_events = sa.Table(
    "usage_events",
    metadata,
    # When the call arrived (UTC). No primary key: TimescaleDB requires every unique index to
    # include the time column, and nothing reads a single event by id.
    sa.Column("time", UTCDateTime(), nullable=False),
    sa.Column("request_id", sa.String(128), nullable=False),
    sa.Column("org_id", Text),
    # The API key's id (``key:<id>`` principals), the user (a JWT's subject, an end user), and
    # who the principal was: its kind and id, so calls by the master key or a JWT are attributable.
    sa.Column("key_id", Text),
    sa.Column("user_id", Text),
    sa.Column("principal_kind", sa.String(16), nullable=False),
    sa.Column("principal_id", Text, nullable=False),
    sa.Column("bridge_id", Text),
    sa.Column("bridge_version", sa.Integer),
    sa.Column("thread_id", Text),
    sa.Column("endpoint", sa.String(64), nullable=False),
    # The model the client asked for, and the provider / upstream model / deployment that answered
    # (or was tried last).
    sa.Column("requested_model", Text),
    sa.Column("provider", Text),
    sa.Column("model", Text),
    sa.Column("deployment", Text),
    sa.Column("attempts", sa.SmallInteger, nullable=False),
    sa.Column("fallback_used", sa.Boolean, nullable=False),
    sa.Column("status", sa.SmallInteger, nullable=False),
    sa.Column("error_class", sa.String(64)),
    sa.Column("error_code", sa.String(64)),
    sa.Column("input_tokens", sa.Integer),
    sa.Column("output_tokens", sa.Integer),
    sa.Column("cached_tokens", sa.Integer),
    sa.Column("cache_write_tokens", sa.Integer),
    sa.Column("reasoning_tokens", sa.Integer),
    # NULL when the cost is unknown (no usage, or no price): never a silent $0.
    sa.Column("cost_usd", sa.Float),
    # The price used (USD per million tokens, and the day it took effect), so the cost can be
    # recomputed after a price change.
    sa.Column("price_input", sa.Float),
    sa.Column("price_output", sa.Float),
    sa.Column("price_cached_input", sa.Float),
    sa.Column("price_cache_write", sa.Float),
    sa.Column("price_reasoning", sa.Float),
    sa.Column("price_since", sa.String(10)),
    sa.Column("latency_ms", sa.Float, nullable=False),
    sa.Column("ttft_ms", sa.Float),
    sa.Column("upstream_ms", sa.Float),
    sa.Column("latency_bucket", sa.SmallInteger, nullable=False),
    sa.Column("cache_hit", sa.Boolean, nullable=False),
    sa.Column("stream", sa.Boolean, nullable=False),
    # For ad-hoc SQL over the raw events of a shared PostgreSQL ledger (by time, an org's or a
    # key's calls, one request). The embedded SQLite ledger skips them (revision m0002 drops the
    # time index m0001 gave it): every index costs each insert, and the analytics API reads the
    # rollups.
    sa.Index(None, "time").ddl_if(dialect="postgresql"),
    sa.Index(None, "org_id", "time").ddl_if(dialect="postgresql"),
    sa.Index(None, "key_id", "time").ddl_if(dialect="postgresql"),
    sa.Index(None, "request_id").ddl_if(dialect="postgresql"),
)

EVENT_COLUMNS: tuple[str, ...] = tuple(column.name for column in usage_events.columns)


#: Counts are integers (a bucket of one key and model never sees 2^31 calls), so PostgreSQL sums
#: them in 64-bit integers; token sums may outgrow that and are bigints; cost and time are floats.
_MEASURE_TYPES = {"input_tokens": sa.BigInteger, "output_tokens": sa.BigInteger, "cached_tokens": sa.BigInteger,
                  "cache_write_tokens": sa.BigInteger, "reasoning_tokens": sa.BigInteger,
                  "cost_usd": sa.Float, "latency_ms_sum": sa.Float}
INTEGER_MEASURES = frozenset(measure for measure in MEASURES if measure not in _MEASURE_TYPES)


def _rollup(name: str, dimensions: tuple[str, ...] = DIMENSIONS) -> sa.Table:
    return sa.Table(
        name,
        metadata,
        sa.Column("bucket", UTCDateTime(), nullable=False),
        *(sa.Column(dimension, Text, nullable=False, server_default="") for dimension in dimensions),
        *(sa.Column(measure, _MEASURE_TYPES.get(measure, sa.Integer), nullable=False, server_default="0")
          for measure in MEASURES),
        *(sa.Column(column, sa.Integer, nullable=False, server_default="0") for column in HISTOGRAM_COLUMNS),
        sa.PrimaryKeyConstraint("bucket", *dimensions),
        *((sa.Index(None, "org_id", "bucket"),) if "org_id" in dimensions else ()),
    )


rollup_minute = _rollup("usage_rollup_minute")
rollup_hour = _rollup("usage_rollup_hour")

#: The whole gateway's traffic per hour by provider and model (every org, key and bridge summed):
#: what questions across all orgs grouped or filtered by model only (the master key's
#: dashboards) read, one row per hour and model instead of one per hour, org, key, bridge and model.
MODEL_DIMENSIONS: tuple[str, ...] = ("provider", "model")
rollup_hour_model = _rollup("usage_rollup_hour_model", MODEL_DIMENSIONS)


def latency_bucket(latency_ms: float) -> int:
    """The histogram bucket of a latency."""
    return bisect_right(LATENCY_BOUNDS_MS, latency_ms)
