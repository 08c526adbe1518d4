"""``junction orgs ...`` and ``junction keys ...``: admin tasks that need no running server.

They build the same :class:`~app.runtime.Runtime` as the server (its stores, without the plugins),
so every change is published on the configured change bus and running servers drop a revoked key
from their caches at once. Output is one JSON
object per line (a created key's secret is printed this once).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

import msgspec

from app.errors import ConfigError, JunctionError

if TYPE_CHECKING:
    from app.settings import Settings
    from app.stores.documents.protocol import DocumentStore

LoadSettings = Callable[[str | None], "Settings"]


def _print(value: Any) -> None:
    sys.stdout.write(msgspec.json.encode(value).decode() + "\n")


def _run(
    load: LoadSettings, args: argparse.Namespace, action: Callable[[DocumentStore], Awaitable[None]]
) -> int:
    from app.runtime import Runtime

    settings = load(args.config)

    async def main() -> None:
        async with Runtime(settings, with_plugins=False) as runtime:
            await action(runtime.documents)

    try:
        asyncio.run(main())
    except ConfigError:
        raise  # the CLI's main reports it (exit status 2)
    except JunctionError as error:
        print(f"junction: {error.message}", file=sys.stderr)
        return 1
    return 0


def add_admin_commands(commands: Any, load: LoadSettings) -> None:
    """Register the ``orgs`` and ``keys`` subcommands on the CLI's subparsers."""
    orgs = commands.add_parser("orgs", help="create and list orgs").add_subparsers(
        dest="action", required=True
    )
    create_org = orgs.add_parser("create", help="create an org")
    create_org.add_argument("name")
    list_orgs = orgs.add_parser("list", help="list orgs")

    keys = commands.add_parser("keys", help="issue, list and revoke API keys").add_subparsers(
        dest="action", required=True
    )
    create_key = keys.add_parser("create", help="issue a key (printed once)")
    create_key.add_argument("--org", required=True, help="org id")
    create_key.add_argument("--name", required=True)
    create_key.add_argument(
        "--scope", action="append", dest="scopes", help="repeat for several (default: chat)"
    )
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

    for parser in (create_org, list_orgs, create_key, list_keys, revoke_key):
        parser.add_argument("--config", help="path to junction.toml")

    def on_orgs(args: argparse.Namespace) -> int:
        async def action(store: DocumentStore) -> None:
            if args.action == "create":
                _print(await store.orgs.create(args.name))
            else:
                for org in await store.orgs.list():
                    _print(org)

        return _run(load, args, action)

    def on_keys(args: argparse.Namespace) -> int:
        from app.domain.keys.controllers import validated_key_spec
        from app.domain.keys.schemas import IssuedKeyView, KeyView, NewKeyBody

        async def action(store: DocumentStore) -> None:
            if args.action == "create":
                body = NewKeyBody(
                    name=args.name,
                    scopes=args.scopes or ["chat"],
                    models=args.models,
                    expires_at=args.expires_at,
                    rpm=args.rpm,
                    tpm=args.tpm,
                    budget_usd=args.budget_usd,
                    budget_period=args.budget_period,
                )
                _print(IssuedKeyView.issued(await store.keys.create(args.org, validated_key_spec(body))))
            elif args.action == "list":
                for record in await store.keys.list(args.org):
                    _print(KeyView.of(record))
            else:
                _print(KeyView.of(await store.keys.revoke(args.org, args.key_id)))

        return _run(load, args, action)

    for parser in (create_org, list_orgs):
        parser.set_defaults(run=on_orgs)
    for parser in (create_key, list_keys, revoke_key):
        parser.set_defaults(run=on_keys)
