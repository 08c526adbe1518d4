"""The lean chat path gives up the CPU after a whole answer (so Granian's I/O thread writes it
first) only when its request is the only one the app is serving, and never after an error."""

from __future__ import annotations

import pytest
from litestar.testing import TestClient

from junction.asgi import create_app
from junction.ingress import lean
from junction.settings import settings_from_mapping
from tests.conftest import UPSTREAM_KEY

MASTER = {"authorization": "Bearer sk-lean-master"}
CHAT = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def app(fake_openai, tmp_path):
    return create_app(settings_from_mapping({
        "auth": {"master_key": "sk-lean-master"},
        "server": {"data_dir": str(tmp_path)},
        "stores": {"documents": f"sqlite+aiosqlite:///{tmp_path}/docs.db"},
        "providers": {"openai": {"api_key": UPSTREAM_KEY, "base_url": fake_openai.base_url}},
    }))


def test_the_lean_path_yields_only_when_its_request_is_alone(app, monkeypatch) -> None:
    assert app.lean is not None
    yields: list[int] = []
    monkeypatch.setattr(lean, "_YIELD_CPU", lambda: yields.append(app.requests_in_flight))
    with TestClient(app) as client:
        assert client.post("/v1/chat/completions", headers=MASTER, json=CHAT).status_code == 200
        assert yields == [1]  # counted by the app, this request included

        yields.clear()
        app.requests_in_flight += 1  # another request in the worker meanwhile
        try:
            assert client.post("/v1/chat/completions", headers=MASTER, json=CHAT).status_code == 200
        finally:
            app.requests_in_flight -= 1
        assert yields == []

        bad = client.post("/v1/chat/completions", headers=MASTER, json={"model": "openai/gpt-4o-mini"})
        assert bad.status_code == 400
        assert yields == []  # after an error the connection may close: no yield ahead of it
    assert app.requests_in_flight == 0
