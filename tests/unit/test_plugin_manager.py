"""Plugin discovery, configuration and start-up validation."""

from __future__ import annotations

from importlib.metadata import EntryPoint

import pytest

from junction.errors import ConfigError
from junction.plugins.manager import installed_entry_points, load_plugins
from junction.settings import settings_from_mapping

SAMPLES = "tests.unit.sample_plugins"


def source(**groups: list[EntryPoint]):
    """An entry-point source: the real installed ones plus the given extra ones."""

    def entry_points(group: str) -> list[EntryPoint]:
        extra = groups.get(group.split(".")[1], [])
        return installed_entry_points(group) + extra

    return entry_points


def provider(name: str, attribute: str) -> EntryPoint:
    return EntryPoint(name, f"{SAMPLES}:{attribute}", "junction.providers")


def middleware(name: str, attribute: str) -> EntryPoint:
    return EntryPoint(name, f"{SAMPLES}:{attribute}", "junction.middleware")


def load(config: dict, **groups):
    return load_plugins(settings_from_mapping(config), entry_points=source(**groups))


def test_provider_is_enabled_by_its_table_and_configured(monkeypatch):
    monkeypatch.delenv("ECHO_TEST_KEY", raising=False)
    loaded = load({"providers": {"echo": {"prefix": "hey"}}}, providers=[provider("echo", "echo")])
    assert loaded.providers["echo"].config.prefix == "hey"
    assert loaded.info("echo", "provider").enabled


def test_provider_without_table_follows_its_env_key(monkeypatch):
    monkeypatch.delenv("ECHO_TEST_KEY", raising=False)
    off = load({}, providers=[provider("echo", "echo")])
    assert "echo" not in off.providers
    assert off.info("echo", "provider").reason == "ECHO_TEST_KEY not set"
    monkeypatch.setenv("ECHO_TEST_KEY", "k-123")
    on = load({}, providers=[provider("echo", "echo")])
    assert on.providers["echo"].config.api_key == "k-123"


def test_enabled_false_switches_a_plugin_off_without_importing_it():
    broken = EntryPoint("echo", "tests.unit.no_such_module:x", "junction.providers")
    loaded = load({"providers": {"echo": {"enabled": False}}}, providers=[broken])
    info = loaded.info("echo", "provider")
    assert not info.enabled and info.reason == "disabled in config"


def test_unknown_plugin_table_is_named():
    with pytest.raises(ConfigError, match=r"providers\.echoo: no installed provider plugin has this name"):
        load({"providers": {"echoo": {}}}, providers=[provider("echo", "echo")])


def test_unknown_plugin_key_is_named():
    with pytest.raises(ConfigError, match=r"providers\.echo\.prefx: unknown key"):
        load({"providers": {"echo": {"prefx": "x"}}}, providers=[provider("echo", "echo")])


def test_bad_plugin_value_is_named():
    with pytest.raises(ConfigError, match=r"providers\.echo\.read_timeout: Expected `float`, got `str`"):
        load({"providers": {"echo": {"read_timeout": "soon"}}}, providers=[provider("echo", "echo")])


def test_hookimpl_without_a_spec_stops_start_up():
    with pytest.raises(ConfigError, match="register_provider"):
        load({}, providers=[provider("typo", "typo")])


def test_provider_name_must_match_its_entry_point():
    with pytest.raises(ConfigError, match="no entry point .* has that name"):
        load({}, providers=[provider("misnamed", "misnamed")])


def test_duplicate_plugin_names_from_two_packages_are_refused():
    twin = EntryPoint("echo", "othertop.module:echo", "junction.providers")
    with pytest.raises(ConfigError, match="two provider plugins are named 'echo'"):
        load({}, providers=[provider("echo", "echo"), twin])


def test_a_provider_whose_create_fails_is_named():
    with pytest.raises(ConfigError, match=r"provider 'broken' failed to start: .*mars-1"):
        load({"providers": {"broken": {"api_key": "k"}}}, providers=[provider("broken", "broken")])


def test_a_provider_config_type_must_be_a_provider_config():
    with pytest.raises(ConfigError, match=r"provider 'wrongconfig'.*ProviderConfig"):
        load({"providers": {"wrongconfig": {}}}, providers=[provider("wrongconfig", "wrongconfig")])


def test_middleware_satisfying_no_protocol_is_refused():
    with pytest.raises(ConfigError, match="satisfies none of"):
        load({}, middleware=[middleware("inert", "inert")])


def test_serving_without_any_authenticator_needs_auth_disabled():
    off = {"master-key": {"enabled": False}, "api-keys": {"enabled": False}}
    with pytest.raises(ConfigError, match="no authenticator is enabled"):
        load({"middleware": off})
    loaded = load({"middleware": off, "auth": {"disabled": True}})
    assert loaded.authenticators == []


def test_built_ins_are_discovered_from_our_own_entry_points():
    loaded = load({"auth": {"master_key": "k"}})
    kinds = {(info.name, info.kind, info.package) for info in loaded.infos}
    assert ("openai", "provider", "junction-gateway") in kinds
    assert ("master-key", "middleware", "junction-gateway") in kinds
    assert ("api-keys", "middleware", "junction-gateway") in kinds
    assert len(loaded.authenticators) == 2  # api-keys and master-key; jwt is off by default


def test_a_provider_table_without_a_key_anywhere_stops_start_up(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ConfigError) as refused:
        load({"providers": {"openai": {"base_url": "http://127.0.0.1:9/v1"}}})
    assert refused.value.message.startswith("providers.openai: no API key: export OPENAI_API_KEY, or set api_key")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")  # a key anywhere is enough: the environment,
    assert "openai" in load({"providers": {"openai": {}}}).providers
    monkeypatch.delenv("OPENAI_API_KEY")
    deployed = {"deployments": [{"model": "openai/gpt-4o-mini", "api_key": "sk-deployment"}]}  # a deployment
    assert "openai" in load({"providers": {"openai": {}}, "models": {"mini": deployed}}).providers
    # a switched-off table needs none, nor a provider that documents it needs none
    assert "openai" not in load({"providers": {"openai": {"enabled": False}}}).providers
    assert "echo" in load({"providers": {"echo": {}}}, providers=[provider("echo", "echo")]).providers


def test_settings_for_an_off_by_default_middleware_without_enabled_are_a_warning():
    loaded = load({"middleware": {"rate-limit": {"prefix": "rl"}, "budget": {"enabled": False},
                                  "response-cache": {"enabled": True}}})
    assert loaded.warnings == ["middleware.rate-limit: the table has settings but the plugin is off by default, "
                               "so they are ignored; add enabled = true to turn it on"]
