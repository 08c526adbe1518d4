"""The ``tracing`` plugin: OpenTelemetry spans per call and per upstream attempt, exported over
OTLP/HTTP (see stage.py). Off by default."""

from app.plugins import MiddlewareSpec, StagePlacement, hookimpl
from plugins.middleware.tracing.config import TracingConfig
from plugins.middleware.tracing.stage import TracingStage


@hookimpl
def register_middleware(register):
    register(MiddlewareSpec(name="tracing", config_type=TracingConfig, create=TracingStage,
                            enabled_by_default=False, stage=StagePlacement(phase="observe", before=("metrics",))))
