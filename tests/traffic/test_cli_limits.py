"""``junction keys create --rpm --tpm --budget-usd --budget-period``, and the limits it sets
enforced by a gateway on the embedded default (in-memory windows and ledgers, no Redis)."""

from __future__ import annotations

from pathlib import Path

import pytest

from junction.testing.server import JunctionProcess
from tests.conftest import openai_provider_table
from tests.fakes.openai_upstream import FakeOpenAI
from tests.tenancy.conftest import MASTER
from tests.tenancy.test_cli import junction, lines, write_config
from tests.traffic.conftest import Admin, chat, error_of

pytestmark = pytest.mark.slow


def test_keys_create_sets_limits_that_the_embedded_gateway_enforces(
        tmp_path: Path, fake_openai_server: FakeOpenAI) -> None:
    config = write_config(tmp_path, "memory://", openai_provider_table(fake_openai_server)
                          + "[middleware.rate-limit]\nenabled = true\n[middleware.budget]\nenabled = true\n")
    [org] = lines(junction(config, "orgs", "create", "Ops"))
    [issued] = lines(junction(config, "keys", "create", "--org", org["id"], "--name", "svc", "--rpm", "2",
                              "--tpm", "50000", "--budget-usd", "2.5", "--budget-period", "day"))
    assert (issued["rpm"], issued["tpm"], issued["budget_usd"], issued["budget_period"]) == (2, 50000, 2.5, "day")

    negative = junction(config, "keys", "create", "--org", org["id"], "--name", "x", "--rpm", "-1")
    assert negative.returncode == 1 and "rpm: must not be negative" in negative.stderr
    for infinite in ("nan", "inf"):  # were stored as no budget at all
        refused = junction(config, "keys", "create", "--org", org["id"], "--name", "x", "--budget-usd", infinite)
        assert refused.returncode == 1 and "budget_usd: must be a finite number" in refused.stderr
    assert [key["name"] for key in lines(junction(config, "keys", "list", "--org", org["id"]))] == ["svc"]
    unknown = junction(config, "keys", "create", "--org", org["id"], "--name", "x", "--budget-period", "week")
    assert unknown.returncode == 2 and "--budget-period" in unknown.stderr

    with JunctionProcess(tmp_path / "server", config.read_text(encoding="utf-8"), master_key=MASTER) as server:
        first = chat(server.url, issued["key"], max_tokens=10)
        assert first.status_code == 200, first.text
        assert first.headers["x-ratelimit-limit-tokens"] == "50000"
        assert chat(server.url, issued["key"], max_tokens=10).status_code == 200
        third = chat(server.url, issued["key"], max_tokens=10)
        assert third.status_code == 429 and error_of(third)["param"] == "key.rpm"
        usage = Admin(server.url).call("GET", f"/api/v1/admin/keys/{issued['id']}?org_id={org['id']}")
        assert usage["usage"]["requests"]["used"] == 2
        assert 0 < usage["usage"]["budget"]["spent_usd"] < 0.001
