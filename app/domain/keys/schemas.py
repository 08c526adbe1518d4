"""Wire shapes of ``/api/v1/admin/keys``. A key's secret appears once, in :class:`IssuedKeyView`;
``secret_hash`` never leaves the store."""

from __future__ import annotations

from datetime import datetime

import msgspec

from junction.stores.documents.protocol import ApiKey, BudgetPeriod, IssuedApiKey
from junction.traffic.report import Usage


class NewKeyBody(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    #: Required with the master key; an org admin's keys are always for its own org.
    org_id: str | None = None
    name: str
    scopes: list[str] = msgspec.field(default_factory=lambda: ["chat"])
    models: list[str] | None = None
    rpm: int | None = None
    tpm: int | None = None
    budget_usd: float | None = None
    budget_period: BudgetPeriod | None = None
    expires_at: datetime | None = None


class KeyView(msgspec.Struct, kw_only=True):
    id: str
    org_id: str
    name: str
    #: The public lookup part, to tell keys apart in listings.
    prefix: str
    scopes: list[str]
    models: list[str] | None
    rpm: int | None
    tpm: int | None
    budget_usd: float | None
    budget_period: BudgetPeriod | None
    expires_at: datetime | None
    revoked_at: datetime | None
    created_at: datetime
    #: Current use against the key's limits and budget, in ``GET /api/v1/admin/keys/{id}`` only
    #: (``null`` elsewhere, and when no limit plugin is enabled).
    usage: Usage | None = None

    @classmethod
    def of(cls, record: ApiKey) -> KeyView:
        return cls(
            id=record.id,
            org_id=record.org_id,
            name=record.name,
            prefix=record.prefix,
            scopes=record.scopes,
            models=record.models,
            rpm=record.rpm,
            tpm=record.tpm,
            budget_usd=record.budget_usd,
            budget_period=record.budget_period,
            expires_at=record.expires_at,
            revoked_at=record.revoked_at,
            created_at=record.created_at,
        )


class IssuedKeyView(KeyView, kw_only=True):
    #: The key itself: shown this once, stored only as a hash.
    key: str

    def __repr__(self) -> str:
        return f"IssuedKeyView(id={self.id!r}, org_id={self.org_id!r}, prefix={self.prefix!r}, key=<redacted>)"

    @classmethod
    def issued(cls, issued: IssuedApiKey) -> IssuedKeyView:
        view = KeyView.of(issued.record)
        return cls(**{name: getattr(view, name) for name in KeyView.__struct_fields__}, key=issued.key)
