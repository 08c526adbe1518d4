"""The ``tracing`` plugin: OpenTelemetry spans per call and per upstream attempt, exported over
OTLP/HTTP (see stage.py). Off by default."""

from typing import Any

from junction.middleware.tracing.config import TracingConfig
from junction.plugins import MiddlewareSpec, PluginContext, StagePlacement, hookimpl


def create_stage(config: TracingConfig, context: PluginContext) -> Any:
    # Imported only when the plugin is enabled: every worker imports this package, and the
    # OpenTelemetry SDK and its OTLP exporter (protobuf) are megabytes that most never use.
    from junction.middleware.tracing.stage import TracingStage

    return TracingStage(config, context)


@hookimpl
def register_middleware(register):
    register(MiddlewareSpec(name="tracing", config_type=TracingConfig, create=create_stage,
                            enabled_by_default=False, stage=StagePlacement(phase="observe", before=("metrics",))))
