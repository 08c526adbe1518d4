"""Limits and budgets of orgs and bridges in the admin API: the ``usage`` the single-record GETs
show (current use against each limit and budget, as the enabled
``rate-limit`` and ``budget`` plugins count it)."""

from __future__ import annotations

from typing import Any

import msgspec

from junction.pipeline import Gateway
from junction.stores.documents.bridges import Bridge
from junction.stores.documents.protocol import Org
from junction.traffic.report import Usage, usage_of


async def usage(gateway: Gateway, scope: str, scope_id: str, record: Any) -> Usage | None:
    return await usage_of(gateway.plugins.by_name, scope, scope_id, record)


class OrgView(Org, kw_only=True):
    #: Current use against the org's limits and budget (``null``: no limit plugin is enabled).
    usage: Usage | None = None

    @classmethod
    async def of(cls, gateway: Gateway, org: Org) -> OrgView:
        return cls(**msgspec.structs.asdict(org), usage=await usage(gateway, "org", org.id, org))


class BridgeView(Bridge, kw_only=True):
    #: Current use against the bridge's limits and budget (``null``: no limit plugin is enabled).
    usage: Usage | None = None

    @classmethod
    async def of(cls, gateway: Gateway, bridge: Bridge) -> BridgeView:
        return cls(**msgspec.structs.asdict(bridge), usage=await usage(gateway, "bridge", bridge.id, bridge))
