"""The traffic and observability plugins' settings are checked at start-up, each bad value named by
its key: one that would quietly switch a plugin off (a store timeout of 0 fails every call, and
fail-open then lets every call through unlimited; a tracing endpoint that is not a URL exports
nothing) stops start-up instead."""

from __future__ import annotations

import pytest

from junction.errors import ConfigError
from junction.plugins.manager import load_plugins
from junction.settings import settings_from_mapping


@pytest.mark.parametrize(("plugin", "table", "message"), [
    ("rate-limit", {"store_timeout_seconds": 0}, "middleware.rate-limit.store_timeout_seconds: Expected `float` > 0"),
    ("budget", {"store_timeout_seconds": -1.0}, "middleware.budget.store_timeout_seconds: Expected `float` > 0"),
    ("response-cache", {"store_retry_seconds": -5}, "middleware.response-cache.store_retry_seconds: Expected `float` >= 0"),
    # named the wrong key (local_seconds) before
    ("response-cache", {"local_max_entries": -1}, "middleware.response-cache.local_max_entries: must be at least 0"),
    ("response-cache", {"single_flight_seconds": -1}, "middleware.response-cache.single_flight_seconds: must be at least 0"),
])
def test_bad_values_name_their_key(plugin, table, message):
    settings = settings_from_mapping({"middleware": {plugin: {"enabled": True, **table}}})
    with pytest.raises(ConfigError) as raised:
        load_plugins(settings)  # as the gateway builds its stages
    assert message in raised.value.message


def test_a_store_timeout_above_zero_and_no_retry_wait_are_accepted():
    settings = settings_from_mapping({"middleware": {"rate-limit": {"enabled": True, "store_timeout_seconds": 0.05,
                                                                    "store_retry_seconds": 0}}})
    loaded = load_plugins(settings, instantiate=False)
    assert loaded.info("rate-limit", "middleware").enabled


@pytest.mark.parametrize("endpoint", ["not a url", "127.0.0.1:4318/v1/traces", "grpc://collector:4317"])
def test_a_tracing_endpoint_that_is_not_an_http_url_stops_start_up(endpoint):
    settings = settings_from_mapping({"middleware": {"tracing": {"enabled": True, "endpoint": endpoint}}})
    with pytest.raises(ConfigError) as raised:
        load_plugins(settings)
    assert raised.value.message.startswith(f"middleware.tracing.endpoint: {endpoint!r} is not an http(s) URL")
