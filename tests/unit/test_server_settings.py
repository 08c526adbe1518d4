"""``[server] redis_reply_poll_us``: checked at start-up, and the most the pipelining Redis connection polls."""

from __future__ import annotations

import pytest

from junction.errors import ConfigError
from junction.runtime import _pipelined_redis
from junction.settings import settings_from_mapping


@pytest.mark.parametrize("value", [-1, 10_001])
def test_a_reply_poll_out_of_range_names_its_key(value: int) -> None:
    with pytest.raises(ConfigError) as raised:
        settings_from_mapping({"server": {"redis_reply_poll_us": value}})
    assert "server.redis_reply_poll_us: must be between 0 and 10000" in raised.value.message


def test_the_reply_poll_reaches_the_pipelining_connection_in_seconds() -> None:
    assert settings_from_mapping({}).server.redis_reply_poll_us == 300
    assert _pipelined_redis("redis://127.0.0.1:6379/0", 250).reply_poll == pytest.approx(0.00025)
    assert _pipelined_redis("redis://127.0.0.1:6379/0", 0).reply_poll == 0


def test_the_app_lets_the_redis_connection_poll_only_while_it_serves_one_request(tmp_path) -> None:
    from junction.asgi import create_app

    settings = settings_from_mapping({"stores": {"cache": "redis://127.0.0.1:6379/7",
                                                 "documents": f"sqlite+aiosqlite:///{tmp_path}/docs.db",
                                                 "metrics": f"sqlite+aiosqlite:///{tmp_path}/metrics.db"},
                                      "auth": {"master_key": "sk-test"}, "server": {"redis_reply_poll_us": 250}})
    app = create_app(settings, provisional=True)
    pipeline = app.state["runtime"].redis_pipeline
    assert pipeline.reply_poll == pytest.approx(0.00025)
    # None in flight: what a worker writes after an answer went out (settles, a cache fill) has
    # nobody waiting for it, and polling for it held up the next request.
    for in_flight, polls in ((0, False), (1, True), (2, False), (7, False)):
        app.requests_in_flight = in_flight
        assert pipeline.serving_one() is polls


async def test_the_app_counts_the_requests_it_is_serving(tmp_path) -> None:
    from junction.asgi import create_app

    settings = settings_from_mapping({"stores": {"documents": f"sqlite+aiosqlite:///{tmp_path}/docs.db",
                                                 "metrics": f"sqlite+aiosqlite:///{tmp_path}/metrics.db"},
                                      "auth": {"master_key": "sk-test"}})
    app = create_app(settings, provisional=True)
    seen: list[int] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        if message["type"] == "http.response.start":
            seen.append(app.requests_in_flight)

    scope = {"type": "http", "method": "GET", "path": "/healthz", "raw_path": b"/healthz", "query_string": b"",
             "headers": [], "scheme": "http", "server": ("127.0.0.1", 80), "client": ("127.0.0.1", 1),
             "http_version": "1.1", "root_path": "", "asgi": {"version": "3.0"}, "state": {}}
    await app(scope, receive, send)  # type: ignore[arg-type]
    assert seen == [1] and app.requests_in_flight == 0
