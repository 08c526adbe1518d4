"""A bench-only middleware plugin, ``round-trip-floor``: each call sends one ``PING`` on its store
batch (the pipelined Redis round trip the traffic plugins share) and does nothing else. Served
beside the plain and traffic gateways by ``bench/traffic.py --floor``, it measures what one bare
Redis round trip per call costs on this host, the floor under any design that checks shared
limits before the call; the rest of the traffic plugins' cost is theirs.

It reaches the gateway as a third-party plugin does: :func:`install` writes a distribution's
metadata (an entry point in the ``junction.middleware`` group) to a folder that goes on the
gateway's ``PYTHONPATH``, next to a copy of this module; ``[middleware.round-trip-floor]`` turns it on.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from junction.plugins import Call, MiddlewareSpec, PluginContext, Stage, StagePlacement, hookimpl
from junction.plugins.store_guard import GuardedConfig, StoreGuard

NAME = "round-trip-floor"
CONFIG = f"[middleware.{NAME}]\nenabled = true\nstore_timeout_seconds = 10.0\n"


class FloorConfig(GuardedConfig):
    pass


class FloorStage(Stage):
    def __init__(self, config: FloorConfig, context: PluginContext) -> None:
        self._pipeline: Any = context.redis_pipeline
        self._guard = StoreGuard(NAME, config)

    async def enter(self, call: Call) -> None:
        call.store_batch(self._pipeline).queue(self._guard, ("PING",), _heard)


def _heard(result: Any) -> None:
    if isinstance(result, BaseException):
        raise result


@hookimpl
def register_middleware(register: Any) -> None:
    register(MiddlewareSpec(name=NAME, config_type=FloorConfig, create=FloorStage, enabled_by_default=False,
                            stage=StagePlacement(phase="admission")))


def install(folder: Path) -> Path:
    """Make this plugin importable and discoverable from ``folder`` (put it on ``PYTHONPATH``)."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(Path(__file__), folder / "round_trip_floor.py")
    metadata = folder / "junction_round_trip_floor-0.dist-info"
    metadata.mkdir(exist_ok=True)
    (metadata / "METADATA").write_text("Metadata-Version: 2.1\nName: junction-round-trip-floor\nVersion: 0\n")
    (metadata / "entry_points.txt").write_text(f"[junction.middleware]\n{NAME} = round_trip_floor\n")
    return folder
