"""``[middleware.metrics]``."""

from junction.plugins import MiddlewareConfig


class MetricsConfig(MiddlewareConfig):
    #: One ``usage_events`` row per call (the analytics API reads their rollups).
    ledger: bool = True
    #: Prometheus metrics at ``GET /metrics``.
    prometheus: bool = True
    #: How often a worker writes its calls' samples to the shared multiprocess files: another
    #: worker's calls show in ``/metrics`` within this (the answering worker's own at once).
    prometheus_flush_seconds: float = 1.0
    #: ``/metrics`` answers without a key (scrapers rarely hold one); ``true`` requires a key
    #: with the ``admin`` scope (or the master key).
    metrics_require_key: bool = False
    #: The ``Server-Timing`` response header on inference answers.
    server_timing: bool = True
    #: Under ``junction serve``, one process per node (the usage relay) makes every worker's
    #: ledger rows and samples, off the workers' event loops (for nodes with idle cores: on a
    #: core the workers keep busy it moves the cost rather than removing it; README *The usage
    #: relay*); ``false``: each worker makes its own.
    relay: bool = False
