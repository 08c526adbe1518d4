"""``junction orgs|keys|credentials ...``: admin tasks that need no running server.

They open the configured document store and change bus — only those, so a command imports little
and starts fast — and every change is published on the bus: running servers drop a revoked key or
a deleted org from their caches at once. Output is a readable table; ``--json`` prints one JSON
object per line for scripts (a created key's secret is printed this once, either way). Names and
scopes are checked as the admin API checks them (:mod:`junction.domain.fields`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any

import msgspec

from junction.errors import ConfigError, JunctionError

if TYPE_CHECKING:
    from junction.settings import Settings
    from junction.stores.documents.protocol import DocumentStore

LoadSettings = Callable[[str | None], "Settings"]
Action = Callable[["DocumentStore", "Settings"], Awaitable[list[Any]]]

ORG_COLUMNS = ("id", "name", "rpm", "tpm", "budget_usd", "budget_period", "created_at")
KEY_COLUMNS = ("id", "org_id", "name", "prefix", "scopes", "models", "expires_at", "revoked_at")


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return value.isoformat(timespec="seconds")
    if isinstance(value, (list, tuple, set, frozenset)):
        return ",".join(map(str, value)) or "-"
    return str(value)


def print_records(records: Sequence[Any], columns: Sequence[str], as_json: bool) -> None:
    """``--json``: one JSON object per line; else a table with a header row."""
    if as_json:
        for record in records:
            sys.stdout.write(msgspec.json.encode(record).decode() + "\n")
        return
    rows = [[column.upper() for column in columns]]
    rows += [[_cell(getattr(record, column, None)) for column in columns] for record in records]
    widths = [max(len(row[index]) for row in rows) for index in range(len(columns))]
    for row in rows:
        sys.stdout.write("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() + "\n")


@asynccontextmanager
async def admin_stores(settings: Settings) -> AsyncIterator[DocumentStore]:
    """The document store, publishing on the configured change bus; both closed at the end."""
    from junction.security.crypto import cipher_from_settings
    from junction.stores.documents import open_document_store
    from junction.stores.notify import open_change_bus
    from junction.stores.startup_errors import explaining

    try:
        changes = open_change_bus(settings.stores.cache)
    except ValueError as error:
        raise ConfigError(f"{settings.source}: {error}") from None
    documents = open_document_store(settings.stores.documents, cipher=cipher_from_settings(settings),
                                    changes=changes)
    with explaining("cache", settings.stores.cache):
        await changes.start()
    try:
        with explaining("documents", settings.stores.documents):
            await documents.start()
        try:
            yield documents
        finally:
            await documents.close()
    finally:
        await changes.close()


def _run(load: LoadSettings, args: argparse.Namespace, action: Action, columns: Sequence[str]) -> int:
    import asyncio

    settings = load(args.config)

    async def main() -> list[Any]:
        async with admin_stores(settings) as documents:
            return await action(documents, settings)

    try:
        records = asyncio.run(main())
    except ConfigError:
        raise  # the CLI's main reports it (exit status 2)
    except JunctionError as error:
        print(f"junction: {error.message}", file=sys.stderr)
        return 1
    print_records(records, columns, args.json)
    return 0


def add_admin_commands(commands: Any, load: LoadSettings) -> None:
    """Register the ``orgs``, ``keys`` and ``credentials`` subcommands on the CLI's subparsers."""
    orgs = commands.add_parser("orgs", help="create, list, rename and delete orgs").add_subparsers(
        dest="action", required=True, metavar="ACTION")
    create_org = orgs.add_parser("create", help="create an org")
    create_org.add_argument("name")
    list_orgs = orgs.add_parser("list", help="list orgs")
    rename_org = orgs.add_parser("rename", help="rename an org")
    rename_org.add_argument("org_id")
    rename_org.add_argument("name")
    delete_org = orgs.add_parser("delete", help="delete an org and all it owns (keys, bridges, threads, ...)")
    delete_org.add_argument("org_id")
    delete_org.add_argument("--yes", action="store_true", required=True,
                            help="required: deleting cannot be undone")

    keys = commands.add_parser("keys", help="issue, list and revoke API keys").add_subparsers(
        dest="action", required=True, metavar="ACTION")
    create_key = keys.add_parser("create", help="issue a key (printed once)")
    create_key.add_argument("--org", required=True, help="org id")
    create_key.add_argument("--name", required=True)
    create_key.add_argument("--scope", action="append", dest="scopes",
                            help="chat or admin; repeat for both (default: chat)")
    create_key.add_argument(
        "--model", action="append", dest="models", help="allowed model; repeat (default: any)"
    )
    create_key.add_argument("--expires-at", type=datetime.fromisoformat, help="ISO 8601 time")
    create_key.add_argument("--rpm", type=int, help="requests a minute (rate-limit plugin)")
    create_key.add_argument("--tpm", type=int, help="tokens a minute (rate-limit plugin)")
    create_key.add_argument("--budget-usd", type=float, help="USD per budget period (budget plugin)")
    create_key.add_argument("--budget-period", choices=["day", "month"],
                            help="UTC calendar period of the budget (default: none, it never resets)")
    list_keys = keys.add_parser("list", help="list an org's keys (no secrets)")
    list_keys.add_argument("--org", required=True)
    revoke_key = keys.add_parser("revoke", help="revoke a key (running servers drop it at once)")
    revoke_key.add_argument("--org", required=True)
    revoke_key.add_argument("key_id")

    credentials = commands.add_parser("credentials", help="stored provider credentials").add_subparsers(
        dest="action", required=True, metavar="ACTION")
    reencrypt = credentials.add_parser(
        "reencrypt", help="re-seal every stored credential with the newest [security] encryption key")

    parsers = (create_org, list_orgs, rename_org, delete_org, create_key, list_keys, revoke_key, reencrypt)
    for parser in parsers:
        parser.add_argument("--config", help="path to junction.toml")
        parser.add_argument("--json", action="store_true", help="one JSON object per line, for scripts")
        parser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)

    def on_orgs(args: argparse.Namespace) -> int:
        from junction.domain.fields import check_name
        from junction.stores.documents.protocol import OrgPatch

        async def action(store: DocumentStore, settings: Settings) -> list[Any]:
            if args.action == "create":
                return [await store.orgs.create(check_name(args.name))]
            if args.action == "rename":
                return [await store.orgs.update(args.org_id, OrgPatch(name=check_name(args.name)))]
            if args.action == "delete":
                deleted = await store.orgs.get(args.org_id)
                await store.orgs.delete(args.org_id)
                await _forget_cached_threads(settings, args.org_id)
                return [deleted]
            return await store.orgs.list()

        return _run(load, args, action, ORG_COLUMNS)

    def on_keys(args: argparse.Namespace) -> int:
        from junction.domain.fields import validated_key_spec
        from junction.domain.keys.schemas import IssuedKeyView, KeyView, NewKeyBody

        async def action(store: DocumentStore, settings: Settings) -> list[Any]:
            if args.action == "create":
                body = NewKeyBody(name=args.name, scopes=args.scopes or ["chat"], models=args.models,
                                  expires_at=args.expires_at, rpm=args.rpm, tpm=args.tpm,
                                  budget_usd=args.budget_usd, budget_period=args.budget_period)
                return [IssuedKeyView.issued(await store.keys.create(args.org, validated_key_spec(body)))]
            if args.action == "list":
                return [KeyView.of(record) for record in await store.keys.list(args.org)]
            return [KeyView.of(await store.keys.revoke(args.org, args.key_id))]

        columns = (*KEY_COLUMNS, "key") if args.action == "create" else KEY_COLUMNS
        return _run(load, args, action, columns)

    def on_credentials(args: argparse.Namespace) -> int:
        from junction.stores.documents.rotation import reencrypt_all_credentials

        async def action(store: DocumentStore, settings: Settings) -> list[Any]:
            return [Resealed(resealed=await reencrypt_all_credentials(store))]

        return _run(load, args, action, ("resealed",))

    for parser in (create_org, list_orgs, rename_org, delete_org):
        parser.set_defaults(run=on_orgs)
    for parser in (create_key, list_keys, revoke_key):
        parser.set_defaults(run=on_keys)
    reencrypt.set_defaults(run=on_credentials)


async def _forget_cached_threads(settings: Settings, org_id: str) -> None:
    """What the API's org deletion also does: the org's threads leave a Redis thread cache."""
    from junction.stores.notify import is_redis_url

    if not is_redis_url(settings.stores.cache):
        return
    import redis.asyncio as redis

    from junction.domain.threads.cache import RedisThreadCache

    client = redis.Redis.from_url(settings.stores.cache)
    try:
        await RedisThreadCache(client, settings.threads.cache_seconds).drop_org(org_id)
    finally:
        await client.aclose()


class Resealed(msgspec.Struct):
    """``junction credentials reencrypt``: how many credentials the newest key now seals."""

    resealed: int
