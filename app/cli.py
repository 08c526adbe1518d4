"""``junction`` command line: serve, worker, plugins, migrate.

Every Granian worker ``junction serve`` spawns imports this module again (its ``__main__`` is the
console script), so what only a command needs is imported inside that command: argparse, the admin
commands and the like would otherwise sit in every worker's memory (issue 17: idle RSS per worker).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from junction.errors import ConfigError
from junction.settings import (
    CONFIG_ENV_VAR,
    CONFIG_FILE,
    Settings,
    config_path,
    ensure_master_key,
    load_settings,
)

if TYPE_CHECKING:
    import argparse

#: The commented config `junction init` writes, shipped inside the package.
EXAMPLE_CONFIG = "junction.example.toml"


def _load(config: str | None) -> Settings:
    path = config_path(config)
    settings = load_settings(path)
    if path is not None:
        # Granian workers are new processes: they find the same file through the environment.
        os.environ[CONFIG_ENV_VAR] = str(path.resolve())
    return settings


def serve(args: argparse.Namespace) -> int:
    import multiprocessing
    import shutil

    from granian import Granian

    from junction.asgi import create_app
    from junction.plugins import node
    from junction.security.crypto import cipher_from_settings

    # Everything the server and its workers create (SQLite files, key files) is owner-only.
    os.umask(0o077)
    settings = _load(args.config)
    metrics_dir = _prometheus_multiprocess_dir()
    try:
        # The whole config and every plugin validated before anything is written.
        built = create_app(settings, provisional=True)
        options = _granian_options(args, settings)
        _say_which_providers(built.state["runtime"].plugins)
        _print_warnings(built.state["runtime"].plugins)
        data_dir = Path(settings.server.data_dir).resolve()
        print(f"junction: data directory {data_dir} (generated keys, SQLite files given by a relative path; "
              "server.data_dir)", file=sys.stderr)
        key_file = ensure_master_key(settings)
        if key_file is not None:
            print(f"junction: master key in {key_file.resolve()} (owner-only); send it as "
                  "'Authorization: Bearer <key>'", file=sys.stderr)
        cipher_from_settings(settings)  # the generated encryption key file, when one is needed
        _check_stores(settings)  # an unreachable store is one line here, not a traceback per worker
        _upgrade_local_files(settings)
        print(f"junction: serving on http://{options['address']}:{options['port']} "
              f"with {options.get('workers', 1)} worker(s), config: {settings.source}", file=sys.stderr)
        # Workers start as fresh interpreters, not as forks of this process: it built the whole app
        # to validate the config, and a fork would carry all of that into every worker's memory
        # (about 10 MB of RSS each, measured). Python 3.14's default makes Granian spawn anyway.
        multiprocessing.set_start_method("spawn", force=True)
        _worker_allocator_settings()
        services = _node_services(built.state["runtime"].plugins, options.get("workers", 1))
        with node.running(services) as listening:
            for name, address in listening.items():
                print(f"junction: node service {name} on {address}", file=sys.stderr)
            Granian("junction.asgi:create_app_from_environment", factory=True, **options).serve()
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)
    return 0


def _granian_options(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    from junction.granian_config import granian_file, granian_options, http1_settings

    options = granian_options(granian_file())
    options.setdefault("interface", "asgi")
    for option, flag, configured in (("address", args.host, settings.server.host),
                                     ("port", args.port, settings.server.port),
                                     ("workers", args.workers, settings.server.workers)):
        value = flag if flag is not None else configured
        if value is not None:
            options[option] = value
    options.setdefault("address", "127.0.0.1")
    options.setdefault("port", 8080)
    options["http1_settings"] = http1_settings(settings, options.get("http1_settings"))
    return options


def _check_stores(settings: Settings) -> None:
    """Connect to the shared stores (document database, usage ledger, Redis, RabbitMQ) once, and
    close again."""
    import asyncio
    import logging

    import redis.asyncio as redis
    from sqlalchemy.exc import ArgumentError, SQLAlchemyError
    from sqlalchemy.pool import NullPool

    from junction.jobs_broker import build_broker, connect_broker
    from junction.runtime import Runtime
    from junction.stores.documents import url_scheme
    from junction.stores.metrics.migrate import require_head
    from junction.stores.notify import is_redis_url
    from junction.stores.sql_engine import open_engine
    from junction.stores.startup_errors import explain, explaining, refused_by_the_server

    async def check() -> None:
        if is_redis_url(settings.stores.cache):  # at once, rather than the change bus's retries
            client = redis.Redis.from_url(settings.stores.cache)
            try:
                with explaining("cache", settings.stores.cache):
                    await client.ping()
            finally:
                await client.aclose()
        if not settings.stores.documents.startswith("sqlite"):  # a local file needs no check here
            async with Runtime(settings, with_plugins=False):
                pass
        if not settings.stores.metrics.startswith("sqlite"):
            # An old schema stops every worker's start (ConfigError): said here once, as a database
            # or user the server refuses. A server that does not answer does not stop start-up
            # (the workers buffer usage and say so).
            try:
                engine = open_engine(settings.stores.metrics, poolclass=NullPool, hide_parameters=True)
            except (ArgumentError, ValueError) as error:  # a URL SQLAlchemy cannot read (a port not a number)
                raise ConfigError(f"stores.metrics: not a database URL ({error}); use sqlite+aiosqlite:// or "
                                  "postgresql+asyncpg://") from None
            try:
                await require_head(engine)
            except (OSError, SQLAlchemyError) as error:
                if refused_by_the_server(error):
                    raise explain("metrics", settings.stores.metrics, error) or error from error
                # Not answering: the workers' start logs it, and /readyz says so until it answers.
            finally:
                await engine.dispose()
        if url_scheme(settings.stores.queue) != "memory":
            broker = build_broker(settings, worker=False)
            await connect_broker(broker, settings.stores.queue)
            await broker.shutdown()

    alembic = logging.getLogger("alembic")  # its INFO lines are the workers' to print, once
    level = alembic.level
    alembic.setLevel(logging.WARNING)
    try:
        asyncio.run(check())
    finally:
        alembic.setLevel(level)


def _upgrade_local_files(settings: Settings) -> None:
    """The SQLite stores (local files) upgraded here, once, before the workers start: each worker
    then finds them at the newest revision without importing Alembic (~10 MB of its memory). The
    workers still upgrade what they find behind (their own start is unchanged)."""
    import asyncio

    from junction.stores.documents.sql_schema import upgrade_to_head
    from junction.stores.documents.sql_store import SqlDatabase
    from junction.stores.metrics import migrate as ledger
    from junction.stores.metrics.store import tuned
    from junction.stores.sql_engine import open_engine
    from junction.stores.startup_errors import explaining

    async def upgrade() -> None:
        if settings.stores.documents.startswith("sqlite"):
            database = SqlDatabase(settings.stores.documents)
            try:
                with explaining("documents", settings.stores.documents):
                    await upgrade_to_head(database.open())
            finally:
                await database.dispose()
        if settings.stores.metrics.startswith("sqlite"):
            engine = tuned(open_engine(settings.stores.metrics, hide_parameters=True))
            try:
                with explaining("metrics", settings.stores.metrics):
                    await ledger.upgrade(engine, settings)
            finally:
                await engine.dispose()

    asyncio.run(upgrade())


def _say_which_providers(plugins: Any) -> None:
    """The start-up line naming the enabled providers, or how to enable one when none is."""
    enabled = sorted(info.name for info in plugins.infos if info.kind == "provider" and info.enabled)
    if enabled:
        print(f"junction: providers enabled: {', '.join(enabled)}", file=sys.stderr)
        return
    hints = plugins.enable_hints()
    examples = "; ".join(f"{name}: {hint}" for name, hint in sorted(hints.items())[:3])
    print("junction: no provider is enabled, so every model call will be refused. Enable one "
          f"by exporting its key or adding a [providers.<name>] table ({examples}; …)", file=sys.stderr)


def _print_warnings(plugins: Any) -> None:
    for warning in plugins.warnings:
        print(f"junction: warning: {warning}", file=sys.stderr)


def _node_services(plugins: Any, workers: int) -> list[Any]:
    """The processes the enabled plugins run beside ``workers`` workers (``register_node_services``)."""
    services: list[Any] = []
    plugins.hooks.register_node_services(register=services.append, components=plugins.by_name,
                                         workers=workers)
    return services


def _worker_allocator_settings() -> None:
    """Environment the spawned workers start with (an operator's own value wins). pyreqwest's
    mimalloc commits its 1 GiB arena reservation eagerly, and the kernel backs the touched part with
    transparent huge pages: 8 MB of RSS in every idle worker for well under 1 MB in use. Committing
    on demand keeps it at what is used (measured: idle RSS −7 MB per worker, CPU per request
    unchanged)."""
    os.environ.setdefault("MIMALLOC_ARENA_EAGER_COMMIT", "0")


def _prometheus_multiprocess_dir() -> str | None:
    """Give prometheus_client's multiprocess mode a fresh directory shared by this server's
    Granian workers, so ``/metrics`` (answered by any worker) sums every worker's samples. Set
    before anything imports prometheus_client (it picks its mode on import); workers inherit it.
    An operator's own ``PROMETHEUS_MULTIPROC_DIR`` is used (and emptied: old samples would be
    counted again); else a temporary one, removed when the server stops."""
    configured = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if configured:
        Path(configured).mkdir(parents=True, exist_ok=True)
        for stale in Path(configured).glob("*.db"):
            stale.unlink()
        return None
    import tempfile

    created = tempfile.mkdtemp(prefix="junction-prometheus-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = created
    return created


def list_plugins(args: argparse.Namespace) -> int:
    from junction.plugins.manager import load_plugins

    settings = _load(args.config)
    loaded = load_plugins(settings, instantiate=False)
    _print_warnings(loaded)
    if args.json:  # one object per plugin, with its phase and place in the pipeline
        import msgspec

        for info in loaded.infos:
            sys.stdout.write(msgspec.json.encode(info).decode() + "\n")
        return 0
    rows = [("NAME", "KIND", "PACKAGE", "VERSION", "ENABLED")]
    for info in loaded.infos:
        enabled = "yes" if info.enabled else f"no ({info.reason})" if info.reason else "no"
        rows.append((info.name, info.kind, info.package, info.version, enabled))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:4])) + "  " + row[4])
    phases = {info.name: info.phase for info in loaded.infos if info.kind == "middleware"}
    print("PIPELINE (outermost first; configure with [pipeline] order)")
    width = max((len(name) for name in loaded.stage_order), default=0)
    for position, name in enumerate(loaded.stage_order, start=1):
        print(f"  {position:>2}. {name.ljust(width)}  {phases[name]}")
    print(f"  {len(loaded.stage_order) + 1:>2}. attempts (routing policy: {settings.routing.policy})")
    return 0


def migrate(args: argparse.Namespace) -> int:
    from alembic import command

    from junction.resources import alembic_config
    from junction.stores.metrics.migrate import migrate_url

    settings = _load(args.config)
    config = alembic_config(settings=settings)
    from junction.stores.startup_errors import explaining

    with explaining("documents", settings.stores.documents):
        command.upgrade(config, "head")
    with explaining("metrics", settings.stores.metrics):
        migrate_url(settings)  # the usage ledger's own migrations (migrations/metrics)
    return 0


def init(args: argparse.Namespace) -> int:
    """Write a commented junction.toml with every section; never over an existing file."""
    from importlib.resources import files

    path = Path(args.path)
    template = files(__package__).joinpath(EXAMPLE_CONFIG).read_text(encoding="utf-8")
    try:
        # Owner-only: operators put secrets in it despite the `{ env = ... }` advice.
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        print(f"junction: {path} already exists; not overwriting it (remove it or pass another path)",
              file=sys.stderr)
        return 1
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        file.write(template)
    print(f"junction: wrote {path}; edit it, then run 'junction serve' in this directory "
          f"(or 'junction serve --config {path}')", file=sys.stderr)
    return 0


def worker(args: argparse.Namespace) -> int:
    import asyncio
    import logging

    from junction.worker import run_worker

    settings = _load(args.config)
    if args.concurrency is not None and args.concurrency < 1:
        raise ConfigError("--concurrency: must be at least 1")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    print(f"junction: worker starting, config: {settings.source}", file=sys.stderr)
    asyncio.run(run_worker(settings, args.concurrency))
    return 0


def build_parser() -> argparse.ArgumentParser:
    import argparse

    from junction.domain.commands import add_admin_commands

    parser = argparse.ArgumentParser(prog="junction", description="Junction AI gateway")
    parser.add_argument("--version", action="version", version=f"junction {_version()}")
    parser.add_argument("--debug", action="store_true", help="print full tracebacks of start-up errors")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve_parser = commands.add_parser("serve", help="serve the gateway with Granian")
    serve_parser.add_argument("--config", help="path to junction.toml")
    serve_parser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help=argparse.SUPPRESS)
    serve_parser.add_argument("--host")
    serve_parser.add_argument("--port", type=int)
    serve_parser.add_argument("--workers", type=int)
    serve_parser.set_defaults(run=serve)

    plugins_parser = commands.add_parser("plugins", help="list discovered plugins")
    plugins_parser.add_argument("--config", help="path to junction.toml")
    plugins_parser.add_argument("--json", action="store_true", help="one JSON object per line, for scripts")
    plugins_parser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help=argparse.SUPPRESS)
    plugins_parser.set_defaults(run=list_plugins)

    migrate_parser = commands.add_parser("migrate", help="bring the SQL schemas up to date")
    migrate_parser.add_argument("--config", help="path to junction.toml")
    migrate_parser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help=argparse.SUPPRESS)
    migrate_parser.set_defaults(run=migrate)
    init_parser = commands.add_parser("init", help="write a commented junction.toml (never overwrites)")
    init_parser.add_argument("path", nargs="?", default=CONFIG_FILE,
                             help=f"where to write it (default: ./{CONFIG_FILE})")
    init_parser.set_defaults(run=init)

    worker_parser = commands.add_parser("worker", help="run queued jobs from the RabbitMQ queue")
    worker_parser.add_argument("--config", help="path to junction.toml")
    worker_parser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help=argparse.SUPPRESS)
    worker_parser.add_argument("--concurrency", type=int, help="jobs run at once (default: [jobs] concurrency)")
    worker_parser.set_defaults(run=worker)
    add_admin_commands(commands, _load)
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("junction-gateway")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:  # bare `junction`: say what it can do
        parser.print_help()
        return 0
    try:
        return args.run(args)
    except ConfigError as error:
        from junction.stores.startup_errors import StoreUnreachable

        if args.debug:
            import traceback

            traceback.print_exception(error)
        what = "cannot start" if isinstance(error, StoreUnreachable) else "configuration error"
        print(f"junction: {what}: {error.message}", file=sys.stderr)
        if not args.debug and (error.__cause__ or error.__context__) is not None:
            print("junction: (run with --debug for the full traceback)", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
