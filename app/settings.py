"""Operator configuration: ``junction.toml`` loading, ``{ env = "VAR" }`` resolution, validation.

The file is found by ``--config PATH``, then ``$JUNCTION_CONFIG``, then ``./junction.toml``, else
the built-in embedded defaults. Every problem is reported at start-up as a :class:`~junction.errors.ConfigError` whose message
names the offending key, e.g. ``server.port: Expected `int`, got `str```.
"""

from __future__ import annotations

import os
import re
import secrets
import tomllib
from pathlib import Path
from typing import Any

import msgspec

from junction.errors import ConfigError
from junction.logs import LoggingSettings
from junction.pricing import PricingSettings
from junction.security.private_files import create_private_file_once
from junction.stores.metrics.settings import MetricsSettings

CONFIG_ENV_VAR = "JUNCTION_CONFIG"
CONFIG_FILE = "junction.toml"
MASTER_KEY_ENV_VAR = "JUNCTION_MASTER_KEY"
MASTER_KEY_FILE = "junction-master-key"


class _Strict(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Base of every settings table: an unknown key is an error, not a silent typo."""


class CorsSettings(_Strict):
    """``[server.cors]``: browsers on these origins may call the API. Off while the list is empty."""

    allow_origins: list[str] = []
    allow_methods: list[str] = msgspec.field(
        default_factory=lambda: ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
    allow_headers: list[str] = msgspec.field(default_factory=lambda: [
        "authorization", "content-type", "x-api-key", "x-request-id", "anthropic-version", "x-junction-org-id"])
    #: Response headers scripts may read (request id, limits, cache and routing headers).
    expose_headers: list[str] = msgspec.field(default_factory=lambda: [
        "x-request-id", "x-junction-deployment", "x-junction-fallback", "x-junction-cache",
        "x-ratelimit-limit-requests", "x-ratelimit-remaining-requests", "x-ratelimit-reset-requests",
        "x-ratelimit-limit-tokens", "x-ratelimit-remaining-tokens", "x-ratelimit-reset-tokens",
        "retry-after", "server-timing"])
    allow_credentials: bool = False
    max_age: int = 600


class ServerSettings(_Strict):
    #: Unset values fall back to granian.toml, then to 127.0.0.1:8080 with one worker.
    host: str | None = None
    port: int | None = None
    workers: int | None = None
    #: Request bodies above this many bytes are refused with 413.
    max_body_bytes: int = 16 * 1024 * 1024
    #: Where the embedded default keeps its files: the generated master and encryption keys, and the
    #: SQLite databases whose URL gives a relative path. Relative to the working directory.
    data_dir: str = "."
    cors: CorsSettings = msgspec.field(default_factory=CorsSettings)
    #: Serve ``POST /v1/chat/completions`` on the lean raw-ASGI path (app/ingress/lean.py), same
    #: behaviour as the Litestar route with less work per request; false routes it through Litestar.
    lean_ingress: bool = True
    #: Run the worker's native threads (Granian's runtime, any a native library starts) as ``SCHED_BATCH``
    #: and the embedded ledger's thread as ``SCHED_IDLE`` (Linux): they stop preempting its Python thread
    #: on each wake-up (app/native_threads.py, stores/metrics/sqlite_ledger.py). False: default policies.
    batch_native_threads: bool = True
    #: With a Redis cache: µs at most a worker serving one request polls for the reply of that
    #: request's round trip, alone in flight, before it sleeps (an idle vCPU that halts wakes late):
    #: one and a half times such round trips' recent mean, and not at all while that mean is longer
    #: than this (a Redis across a network): app/stores/redis_protocol.py; README Rate limits. 0: never.
    redis_reply_poll_us: int = 300


class AuthSettings(_Strict):
    master_key: str | None = None
    #: Serving without any authentication must be asked for explicitly.
    disabled: bool = False


class StoreSettings(_Strict):
    documents: str = "sqlite+aiosqlite:///junction.db"
    metrics: str = "sqlite+aiosqlite:///junction-metrics.db"
    cache: str = "memory://"
    queue: str = "memory://"


class DeploymentSettings(_Strict):
    model: str
    weight: float = 1.0
    api_key: str | None = None
    base_url: str | None = None


class ModelAliasSettings(_Strict):
    deployments: list[DeploymentSettings]
    fallbacks: list[str] = []
    #: Error classes that move a call from the deployments on to the fallbacks (``None``: the
    #: routing policy's ``retry_on``).
    fallback_on: list[str] | None = None
    #: Models with a larger context window, tried when the prompt did not fit (the upstream's
    #: context-length error), and only then.
    context_fallbacks: list[str] = []


class EncryptionKeySettings(_Strict):
    id: str
    #: 32 random bytes, base64-encoded (``openssl rand -base64 32``); normally ``{ env = "VAR" }``.
    key: str


class SecuritySettings(_Strict):
    #: AES-GCM keys sealing stored provider credentials, newest first: the first one encrypts,
    #: every one decrypts (rotation). Empty with a SQLite documents store: a key file is generated
    #: in ``server.data_dir`` (see junction.security.crypto).
    encryption_keys: list[EncryptionKeySettings] = []


class ThreadSettings(_Strict):
    #: How many of a thread's latest messages are sent with the next bridge call.
    history_messages: int = 20
    #: With a Redis cache store, thread reads are served from Redis for this long after a write.
    cache_seconds: int = 3600


class PipelineSettings(_Strict):
    #: The stages in the order they run, outermost first, overriding their declared phases and
    #: before/after constraints. Every enabled stage must be listed. ``None``: as declared.
    order: list[str] | None = None


class RoutingSettings(_Strict):
    #: The middleware plugin whose RoutingPolicy orders deployments and decides retries.
    policy: str = "weighted"


class JobsSettings(_Strict):
    webhook_secret: str | None = None
    allow_private_webhooks: bool = False
    #: Jobs the worker runs at once (``junction worker``; the embedded queue too).
    concurrency: int = 16
    #: The RabbitMQ queue (and exchange) jobs travel on.
    queue_name: str = "junction.jobs"
    #: Seconds a finished job, its result and a batch's files are kept.
    result_ttl_seconds: int = 7 * 24 * 3600
    #: Starts of one job before it is dead-lettered: transient failures (429, 5xx, timeouts, a
    #: worker that died mid-job) are retried until then, with exponential backoff from
    #: ``retry_backoff_seconds``.
    max_attempts: int = 3
    retry_backoff_seconds: float = 1.0
    #: Webhook deliveries: attempts before the delivery is dead, the first backoff (doubling),
    #: and each attempt's timeout.
    webhook_max_attempts: int = 5
    webhook_backoff_seconds: float = 1.0
    webhook_timeout_seconds: float = 10.0
    #: Requests in one batch, and bytes of one uploaded batch file.
    max_batch_requests: int = 50_000
    max_file_bytes: int = 100 * 1024 * 1024
    #: Keep batch files' bytes in this directory (shared by every node) instead of the documents store.
    files_dir: str | None = None
    #: Seconds between a worker's sweeps: expired jobs, batches and files (``files_dir`` too)
    #: deleted, and batches left finalizing by a worker that died taken over.
    sweep_interval_seconds: float = 60.0
    #: A batch finalizing this long without progress lost its worker: another one finishes it.
    finalize_timeout_seconds: float = 120.0
    #: A job is stored first and published to the queue after the 202 (an outbox). One still not
    #: confirmed by the queue this long after it was stored (its server died first, or the queue
    #: was down) is published by a sweep.
    publish_timeout_seconds: float = 30.0


class KnowledgeSettings(_Strict):
    """``[knowledge]``: RAG collections (see README, "Knowledge")."""

    #: The vector index plugin (``junction.vector_indexes``): ``auto`` is ``pgvector`` when the
    #: documents store is PostgreSQL with the extension, else ``in-process``.
    index: str = "auto"
    #: Per index plugin: its config table, ``[knowledge.indexes.<name>]``.
    indexes: dict[str, dict[str, Any]] = {}
    #: Texts per embeddings request while ingesting.
    embed_batch: int = 64
    #: Bytes of one ingested document (decoded); larger ones are a 413.
    max_document_bytes: int = 20 * 1024 * 1024
    #: Chunks one document may become; more is a 413.
    max_document_chunks: int = 20_000
    #: The most results a query or a bridge's knowledge may ask for.
    max_top_k: int = 100
    #: Documents of more characters (text, or decoded bytes) are ingested as a queued job (202 and
    #: the job's id; its progress on ``GET /api/v1/jobs/{id}``); ``x-junction-async: true`` asks
    #: for a job whatever the size.
    async_ingest_chars: int = 200_000


class LimitsSettings(_Strict):
    """What one request may ask of a worker; each is refused with a 400/413 naming the key."""

    #: Arrays and objects nested deeper than this in any JSON body: 400 ``json_too_deep``.
    max_json_depth: int = 64
    #: Messages in one chat request (OpenAI's own limit is 2,048).
    max_messages: int = 2048
    #: Characters of a request's ``model`` (a provider's model id, an alias, ``bridge/<slug>``).
    max_model_chars: int = 256
    #: Characters of a bridge's prompt once its variables are filled in.
    max_prompt_chars: int = 1_048_576
    #: Characters of one bridge variable's value (as JSON text when it is not a string).
    max_variable_chars: int = 262_144
    #: Characters of a stored provider credential's ``api_key``.
    max_credential_chars: int = 16_384
    #: Bytes of a request's headers (Granian's HTTP/1 buffer); larger ones get 431 from the server.
    max_header_bytes: int = 65_536
    #: Seconds a client has to send its request headers, and to send the next request on a kept-alive
    #: connection; then the connection is closed.
    header_read_timeout_seconds: float = 10.0
    #: Seconds a client has to send a whole request body, once the handler reads it: 408 after that.
    body_read_timeout_seconds: float = 60.0


class Settings(_Strict):
    server: ServerSettings = msgspec.field(default_factory=ServerSettings)
    auth: AuthSettings = msgspec.field(default_factory=AuthSettings)
    stores: StoreSettings = msgspec.field(default_factory=StoreSettings)
    #: Raw per-plugin tables; each is validated by its plugin's own Struct in app.plugins.manager.
    providers: dict[str, dict[str, Any]] = {}
    middleware: dict[str, dict[str, Any]] = {}
    models: dict[str, ModelAliasSettings] = {}
    pipeline: PipelineSettings = msgspec.field(default_factory=PipelineSettings)
    routing: RoutingSettings = msgspec.field(default_factory=RoutingSettings)
    jobs: JobsSettings = msgspec.field(default_factory=JobsSettings)
    threads: ThreadSettings = msgspec.field(default_factory=ThreadSettings)
    security: SecuritySettings = msgspec.field(default_factory=SecuritySettings)
    pricing: PricingSettings = msgspec.field(default_factory=PricingSettings)
    limits: LimitsSettings = msgspec.field(default_factory=LimitsSettings)
    knowledge: KnowledgeSettings = msgspec.field(default_factory=KnowledgeSettings)
    metrics: MetricsSettings = msgspec.field(default_factory=MetricsSettings)
    logging: LoggingSettings = msgspec.field(default_factory=LoggingSettings)
    #: Where the settings came from, for messages; not a config key.
    source: str = "built-in defaults"


_PATH_IN_MESSAGE = re.compile(r" - at `\$(?P<path>[^`]*)`$")


def describe_validation_error(error: msgspec.ValidationError, prefix: str = "") -> str:
    """Rewrite msgspec's ``... - at `$.server.port``` into ``server.port: ...``."""
    text = str(error)
    match = _PATH_IN_MESSAGE.search(text)
    path = prefix
    if match:
        text = text[: match.start()]
        dotted = re.sub(r"\[(\d+)\]", r"[\1]", match.group("path")).lstrip(".")
        path = f"{prefix}.{dotted}" if prefix and dotted else (dotted or prefix)
    unknown = re.match(r"Object contains unknown field `(?P<name>[^`]+)`", text)
    if unknown:
        key = f"{path}.{unknown.group('name')}" if path else unknown.group("name")
        return f"{key}: unknown key"
    return f"{path}: {text}" if path else text


def resolve_env_references(value: Any, path: str = "") -> Any:
    """Replace every ``{ env = "VAR" }`` table with the variable's value; missing → ConfigError."""
    if isinstance(value, dict):
        if set(value) == {"env"} and isinstance(value["env"], str):
            name = value["env"]
            if name not in os.environ:
                raise ConfigError(f"{path}: environment variable {name} is not set")
            return os.environ[name]
        return {key: resolve_env_references(item, f"{path}.{key}" if path else key) for key, item in value.items()}
    if isinstance(value, list):
        return [resolve_env_references(item, f"{path}[{index}]") for index, item in enumerate(value)]
    return value


def settings_from_mapping(raw: dict[str, Any], source: str = "mapping") -> Settings:
    resolved = resolve_env_references(raw)
    models = resolved.get("models")
    if isinstance(models, dict):
        # Validated one by one: msgspec reports a dict key as `[...]`, we want `models.<name>`.
        for name, table in models.items():
            try:
                msgspec.convert(table, ModelAliasSettings)
            except msgspec.ValidationError as error:
                raise ConfigError(f"{source}: {describe_validation_error(error, prefix=f'models.{name}')}") from None
    try:
        settings = msgspec.convert(resolved, Settings)
    except msgspec.ValidationError as error:
        raise ConfigError(f"{source}: {describe_validation_error(error)}") from None
    settings.source = source
    for store in ("documents", "metrics"):
        url = sqlite_in_data_dir(getattr(settings.stores, store), settings.server.data_dir)
        setattr(settings.stores, store, url)
    if settings.auth.master_key is None and os.environ.get(MASTER_KEY_ENV_VAR):
        settings.auth.master_key = os.environ[MASTER_KEY_ENV_VAR]
    _check_values(settings)
    settings.metrics.check(settings.source, settings.stores.metrics)
    return settings


def sqlite_in_data_dir(url: str, data_dir: str) -> str:
    """A SQLite URL's relative file path made absolute under ``data_dir``, so every file of the
    embedded default lives in one place whatever directory a command runs in."""
    prefix, separator, path = url.partition(":///")
    if (not prefix.startswith("sqlite") or not separator or not path or path.startswith(("/", "?"))
            or path.startswith((":memory:", "file:"))):
        return url
    return f"{prefix}:///{os.path.abspath(os.path.join(data_dir, path))}"


def _check_values(settings: Settings) -> None:
    if settings.server.port is not None and not 0 < settings.server.port < 65536:
        raise ConfigError(f"{settings.source}: server.port: must be between 1 and 65535")
    if settings.server.workers is not None and settings.server.workers < 1:
        raise ConfigError(f"{settings.source}: server.workers: must be at least 1")
    if settings.threads.history_messages < 0:
        raise ConfigError(f"{settings.source}: threads.history_messages: must be at least 0")
    for origin in settings.server.cors.allow_origins:
        if origin != "*" and not re.fullmatch(r"https?://[^/\s]+", origin):
            raise ConfigError(f"{settings.source}: server.cors.allow_origins: {origin!r} is not an origin "
                              "(scheme://host[:port], no path) or \"*\"")
    if settings.server.max_body_bytes < 1024:
        raise ConfigError(f"{settings.source}: server.max_body_bytes: must be at least 1024")
    if not 0 <= settings.server.redis_reply_poll_us <= 10_000:
        raise ConfigError(f"{settings.source}: server.redis_reply_poll_us: must be between 0 and 10000")
    _check_limits(settings)
    _check_jobs(settings)
    for key in ("embed_batch", "max_document_bytes", "max_document_chunks", "max_top_k",
                "async_ingest_chars"):
        if getattr(settings.knowledge, key) < 1:
            raise ConfigError(f"{settings.source}: knowledge.{key}: must be at least 1")
    for name, alias in settings.models.items():
        if not alias.deployments:
            raise ConfigError(f"{settings.source}: models.{name}.deployments: needs at least one deployment")
        for index, deployment in enumerate(alias.deployments):
            if deployment.weight <= 0:
                raise ConfigError(f"{settings.source}: models.{name}.deployments[{index}].weight: must be > 0")


def _check_limits(settings: Settings) -> None:
    limits = settings.limits
    for key in ("max_json_depth", "max_messages", "max_model_chars", "max_prompt_chars", "max_variable_chars",
                "max_credential_chars"):
        if getattr(limits, key) < 1:
            raise ConfigError(f"{settings.source}: limits.{key}: must be at least 1")
    if limits.max_header_bytes < 8192:  # hyper, under Granian, needs at least this much buffer
        raise ConfigError(f"{settings.source}: limits.max_header_bytes: must be at least 8192")
    for key in ("header_read_timeout_seconds", "body_read_timeout_seconds"):
        if getattr(limits, key) <= 0:
            raise ConfigError(f"{settings.source}: limits.{key}: must be > 0")


def _check_jobs(settings: Settings) -> None:
    jobs = settings.jobs
    for name in ("concurrency", "result_ttl_seconds", "max_attempts", "webhook_max_attempts",
                 "max_batch_requests", "max_file_bytes"):
        if getattr(jobs, name) < 1:
            raise ConfigError(f"{settings.source}: jobs.{name}: must be at least 1")
    for name in ("retry_backoff_seconds", "webhook_backoff_seconds", "webhook_timeout_seconds"):
        if getattr(jobs, name) < 0:
            raise ConfigError(f"{settings.source}: jobs.{name}: must not be negative")
    for name in ("sweep_interval_seconds", "finalize_timeout_seconds", "publish_timeout_seconds"):
        if getattr(jobs, name) <= 0:
            raise ConfigError(f"{settings.source}: jobs.{name}: must be > 0")
    if not jobs.queue_name.strip():
        raise ConfigError(f"{settings.source}: jobs.queue_name: must not be empty")


def config_path(explicit: str | os.PathLike[str] | None = None) -> Path | None:
    """The config file to read: ``--config``, then ``$JUNCTION_CONFIG``, then ``./junction.toml``
    when it exists, else none (the built-in defaults)."""
    if explicit:
        return Path(explicit)
    from_env = os.environ.get(CONFIG_ENV_VAR)
    if from_env:
        return Path(from_env)
    local = Path.cwd() / CONFIG_FILE
    return local if local.is_file() else None


def load_settings(explicit: str | os.PathLike[str] | None = None) -> Settings:
    path = config_path(explicit)
    if path is None:
        return settings_from_mapping({}, source="built-in defaults")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML: {error}") from None
    return settings_from_mapping(raw, source=str(path))


def ensure_master_key(settings: Settings) -> Path | None:
    """Give ``settings`` a master key, generating one on first start when none is configured.

    The generated key is written once, owner-only (0600), to ``<data_dir>/junction-master-key``;
    concurrent workers race safely (``O_EXCL``), and later starts read the same file. Returns the
    file's path when the key came from it, so the CLI can tell the operator where it is.
    """
    if settings.auth.master_key or settings.auth.disabled:
        return None
    path = Path(settings.server.data_dir) / MASTER_KEY_FILE
    create_private_file_once(path, "sk-junction-" + secrets.token_urlsafe(32) + "\n")
    key = path.read_text(encoding="utf-8").strip()
    if not key:
        raise ConfigError(f"{path} is empty; delete it to generate a new master key")
    settings.auth.master_key = key
    return path
