"""``[middleware.metrics]``."""

import math
import os
from pathlib import Path
from typing import Literal

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
    #: ledger rows and samples, off the workers' event loops; ``false``: each worker makes its
    #: own. ``auto``: the relay where the node has a core its workers leave idle (the CPUs the
    #: server may use outnumber its workers: :func:`usable_cpus`). There it takes most of the
    #: metrics' cost off the workers; on a core the workers keep busy it would move the cost
    #: rather than remove it (README *The usage relay*).
    relay: bool | Literal["auto"] = "auto"

    def relay_for(self, workers: int) -> bool:
        """Whether ``junction serve`` with ``workers`` workers runs the usage relay."""
        if not (self.ledger or self.prometheus):
            return False  # nothing to relay
        if self.relay == "auto":
            return usable_cpus() > workers
        return self.relay


#: The cgroup v2 CPU quota of the process's group (its container's), where there is one.
CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


def usable_cpus(cpu_max: Path | None = None) -> int:
    """The CPUs this process may use: those it may run on (its affinity: a ``taskset``, a
    container's cpuset), fewer under a CPU quota (cgroup v2 ``cpu.max``, e.g. a Kubernetes CPU
    limit: there the relay's time would come out of the workers' quota)."""
    affinity = getattr(os, "sched_getaffinity", None)
    cpus = len(affinity(0)) if affinity is not None else os.cpu_count() or 1
    try:
        quota, period = (cpu_max or CPU_MAX).read_text().split()[:2]
        limit = math.ceil(int(quota) / int(period))
    except (OSError, ValueError, ZeroDivisionError):
        return cpus  # no cgroup v2 quota here ("max", or no such file)
    return min(cpus, max(1, limit))
