"""A key issued by a confined caller (an org admin key here; a JWT in tests/plugins/jwt) may not
outlive or out-spend its issuer: its expiry, rpm, tpm and budget stay within the issuer's, where
the issuer has them. The master key is not bounded. Real server, PostgreSQL and SQLite documents."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.tenancy.conftest import Api, new_tenant

pytestmark = pytest.mark.slow


def at(days: float) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).isoformat()


def bounded_admin(master: Api, **limits: Any) -> tuple[str, Api]:
    tenant = new_tenant(master, "Bounded")
    issued = master.ok(
        "POST",
        "/api/v1/admin/keys",
        {"org_id": tenant.org_id, "name": "bounded", "scopes": ["chat", "admin"], **limits},
        status=201,
    )
    return tenant.org_id, master.as_key(issued["key"])


def refused(api: Api, body: dict[str, Any], param: str) -> str:
    response = api.request("POST", "/api/v1/admin/keys", body)
    assert response.status_code == 403, response.text
    error = response.json()["error"]
    assert error["param"] == param and error["type"] and param in error["message"], error
    return error["message"]


def test_a_key_issued_by_an_expiring_admin_key_expires_no_later(master: Api) -> None:
    org_id, admin = bounded_admin(master, expires_at=at(7))
    message = refused(admin, {"name": "forever"}, "expires_at")
    assert "expire" in message
    refused(admin, {"name": "later", "expires_at": at(8)}, "expires_at")
    sooner = admin.ok("POST", "/api/v1/admin/keys", {"name": "sooner", "expires_at": at(6)}, status=201)
    assert sooner["expires_at"] is not None
    # the master key is not bounded by anyone
    master.ok("POST", "/api/v1/admin/keys", {"org_id": org_id, "name": "m"}, status=201)


def test_a_key_issued_by_a_rate_limited_admin_key_is_limited_as_much(master: Api) -> None:
    org_id, admin = bounded_admin(master, rpm=60, tpm=10_000)
    refused(admin, {"name": "x", "tpm": 10_000}, "rpm")
    refused(admin, {"name": "x", "rpm": 61, "tpm": 10_000}, "rpm")
    refused(admin, {"name": "x", "rpm": 60}, "tpm")
    refused(admin, {"name": "x", "rpm": 60, "tpm": 10_001}, "tpm")
    admin.ok("POST", "/api/v1/admin/keys", {"name": "x", "rpm": 60, "tpm": 5_000}, status=201)
    master.ok("POST", "/api/v1/admin/keys", {"org_id": org_id, "name": "m", "rpm": 1_000}, status=201)


def test_a_key_issued_by_a_budgeted_admin_key_spends_no_more(master: Api) -> None:
    _, daily = bounded_admin(master, budget_usd=5.0, budget_period="day")
    refused(daily, {"name": "x"}, "budget_usd")
    refused(daily, {"name": "x", "budget_usd": 5.01, "budget_period": "day"}, "budget_usd")
    # a budget with no period never resets: at most as much as the issuer's, in a longer window
    for period in ("day", "month", None):
        body = {"name": "x", "budget_usd": 5.0, "budget_period": period}
        daily.ok("POST", "/api/v1/admin/keys", body, status=201)
    _, monthly = bounded_admin(master, budget_usd=100.0, budget_period="month")
    refused(monthly, {"name": "x", "budget_usd": 10.0, "budget_period": "day"}, "budget_period")
    monthly.ok(
        "POST", "/api/v1/admin/keys", {"name": "x", "budget_usd": 100.0, "budget_period": "month"}, status=201
    )
    _, lifetime = bounded_admin(master, budget_usd=20.0)
    for period in ("day", "month"):
        refused(lifetime, {"name": "x", "budget_usd": 1.0, "budget_period": period}, "budget_period")
    lifetime.ok("POST", "/api/v1/admin/keys", {"name": "x", "budget_usd": 20.0}, status=201)


def test_an_unbounded_admin_key_issues_unbounded_keys(master: Api) -> None:
    tenant = new_tenant(master, "Unbounded")
    tenant.admin.ok("POST", "/api/v1/admin/keys", {"name": "free"}, status=201)
