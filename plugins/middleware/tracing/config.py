"""``[middleware.tracing]`` (off by default: ``enabled = true`` switches it on)."""

from junction.plugins import MiddlewareConfig


class TracingConfig(MiddlewareConfig):
    enabled: bool = False
    #: The OTLP/HTTP traces endpoint of a collector (or a vendor's).
    endpoint: str = "http://127.0.0.1:4318/v1/traces"
    #: Headers sent with every export (e.g. a vendor's API key: use ``{ env = "VAR" }``).
    headers: dict[str, str] = {}
    service_name: str = "junction"
    #: Share of calls traced when the client sent no sampled ``traceparent`` (0..1).
    sample_ratio: float = 1.0
    #: How long spans are batched before an export, and the export's own timeout.
    export_delay_ms: int = 1000
    export_timeout_seconds: float = 10.0
    #: A child span per pipeline stage (``stage <name>``: its ``enter``, or the time it wraps the
    #: inner layers with ``handle`` / ``stream``), nested as the stages are; attempts are children
    #: of the innermost one.
    stage_spans: bool = True
