"""The ``tracing`` plugin: OpenTelemetry spans per call and per upstream attempt, exported over
OTLP/HTTP (see stage.py). Off by default."""

from junction.middleware.tracing.config import TracingConfig
from junction.middleware.tracing.stage import TracingStage
from junction.plugins import MiddlewareSpec, StagePlacement, hookimpl


@hookimpl
def register_middleware(register):
    register(MiddlewareSpec(name="tracing", config_type=TracingConfig, create=TracingStage,
                            enabled_by_default=False, stage=StagePlacement(phase="observe", before=("metrics",))))
