"""A bridge call looks its bridge up once, whichever way it comes in: the bridge chat route hands
the bridge it resolved to the ``bridges`` stage, which expands it without a second lookup."""

from __future__ import annotations

import pytest
from litestar.testing import TestClient

from junction.asgi import create_app
from junction.settings import settings_from_mapping
from tests.conftest import UPSTREAM_KEY

MASTER = {"authorization": "Bearer sk-lookup-master"}


@pytest.fixture
def app_and_lookups(fake_openai, tmp_path, monkeypatch):
    settings = settings_from_mapping({
        "auth": {"master_key": "sk-lookup-master"},
        "server": {"data_dir": str(tmp_path)},
        "stores": {"documents": f"sqlite+aiosqlite:///{tmp_path}/docs.db"},
        "providers": {"openai": {"api_key": UPSTREAM_KEY, "base_url": fake_openai.base_url, "models": ["gpt-4o-mini"]}},
    })
    app = create_app(settings)
    bridges = app.state["runtime"].domain.bridges
    lookups: list[str] = []
    find = bridges.find

    async def counted(principal, requested_org, id_or_slug):
        lookups.append(id_or_slug)
        return await find(principal, requested_org, id_or_slug)

    monkeypatch.setattr(bridges, "find", counted)
    return app, lookups


def test_each_bridge_call_looks_the_bridge_up_once(app_and_lookups):
    app, lookups = app_and_lookups
    with TestClient(app) as client:
        org = client.post("/api/v1/admin/orgs", json={"name": "Lookups"}, headers=MASTER).json()
        created = client.post("/api/v1/bridges", headers=MASTER, json={
            "org_id": org["id"], "slug": "brief", "name": "Brief", "model": "openai/gpt-4o-mini",
            "prompt": "Be brief."})
        assert created.status_code == 201, created.text
        in_org = {**MASTER, "x-junction-org-id": org["id"]}
        for stream in (False, True):
            lookups.clear()
            turn = client.post("/api/v1/bridges/brief/chat", headers=in_org, json={"user": "hi", "stream": stream})
            assert turn.status_code == 200, turn.text
            assert lookups == ["brief"]
            lookups.clear()
            chat = client.post("/v1/chat/completions", headers=in_org, json={
                "model": "bridge/brief", "messages": [{"role": "user", "content": "hi"}], "stream": stream})
            assert chat.status_code == 200, chat.text
            assert lookups == ["brief"]
