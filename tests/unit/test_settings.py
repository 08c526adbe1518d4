"""Config loading and validation: every problem names its key."""

from __future__ import annotations

import pytest

from junction.errors import ConfigError
from junction.settings import ensure_master_key, load_settings, settings_from_mapping


def write(tmp_path, text: str):
    path = tmp_path / "junction.toml"
    path.write_text(text)
    return path


def test_defaults_need_no_file(monkeypatch):
    monkeypatch.delenv("JUNCTION_CONFIG", raising=False)
    settings = load_settings()
    assert settings.stores.documents.startswith("sqlite+aiosqlite:///")
    assert settings.stores.cache == "memory://" and settings.stores.queue == "memory://"


def test_config_env_var_is_used(tmp_path, monkeypatch):
    monkeypatch.setenv("JUNCTION_CONFIG", str(write(tmp_path, "[server]\nport = 9001\n")))
    assert load_settings().server.port == 9001


@pytest.mark.parametrize(("text", "message"), [
    ("[server]\nprot = 1\n", "server.prot: unknown key"),
    ("[sever]\nport = 1\n", "sever: unknown key"),
    ('[server]\nport = "x"\n', "server.port: Expected `int | null`, got `str`"),
    ("[server]\nport = 70000\n", "server.port: must be between 1 and 65535"),
    ("[models.fast]\ndeployments = []\n", "models.fast.deployments: needs at least one deployment"),
    ('[models.fast]\ndeployments = [{ model = "a/b", wieght = 2 }]\n', "models.fast.deployments[0].wieght: unknown key"),
    ("[server\n", "not valid TOML"),
    # A ledger URL without the async driver failed in every worker with a traceback.
    ('[stores]\nmetrics = "postgresql://db/junction"\n', "stores.metrics: unsupported URL scheme 'postgresql'; "
                                                        "use sqlite+aiosqlite:// (embedded) or postgresql+asyncpg://"),
])
def test_bad_config_names_the_key(tmp_path, text, message):
    with pytest.raises(ConfigError) as caught:
        load_settings(write(tmp_path, text))
    assert message in caught.value.message


def test_env_references_are_resolved(monkeypatch):
    monkeypatch.setenv("MY_KEY", "sk-from-env")
    settings = settings_from_mapping({"auth": {"master_key": {"env": "MY_KEY"}},
                                      "providers": {"openai": {"api_key": {"env": "MY_KEY"}}}})
    assert settings.auth.master_key == "sk-from-env"
    assert settings.providers["openai"]["api_key"] == "sk-from-env"


def test_missing_env_reference_names_the_variable_and_key(monkeypatch):
    monkeypatch.delenv("NOPE_NOT_SET", raising=False)
    with pytest.raises(ConfigError, match=r"providers\.openai\.api_key: environment variable NOPE_NOT_SET is not set"):
        settings_from_mapping({"providers": {"openai": {"api_key": {"env": "NOPE_NOT_SET"}}}})


def test_master_key_env_var(monkeypatch):
    monkeypatch.setenv("JUNCTION_MASTER_KEY", "sk-env-master")
    assert settings_from_mapping({}).auth.master_key == "sk-env-master"


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml")


def test_generated_master_key_is_stable_and_private(tmp_path, monkeypatch):
    monkeypatch.delenv("JUNCTION_MASTER_KEY", raising=False)
    first = settings_from_mapping({"server": {"data_dir": str(tmp_path)}})
    path = ensure_master_key(first)
    second = settings_from_mapping({"server": {"data_dir": str(tmp_path)}})
    ensure_master_key(second)
    assert first.auth.master_key == second.auth.master_key
    assert path.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["junction-master-key"]  # no temporary left behind


def test_relative_sqlite_files_live_in_the_data_directory(tmp_path, monkeypatch):
    from junction.settings import settings_from_mapping

    monkeypatch.chdir(tmp_path)
    data = tmp_path / "data"
    settings = settings_from_mapping({"server": {"data_dir": str(data)},
                                      "stores": {"metrics": "sqlite+aiosqlite:///ledger/m.db?timeout=5"}})
    assert settings.stores.documents == f"sqlite+aiosqlite:///{data}/junction.db"
    assert settings.stores.metrics == f"sqlite+aiosqlite:///{data}/ledger/m.db?timeout=5"
    default = settings_from_mapping({})  # data_dir "." is the working directory, made absolute
    assert default.stores.documents == f"sqlite+aiosqlite:///{tmp_path}/junction.db"
    for kept in ("sqlite+aiosqlite:////srv/j.db", "sqlite+aiosqlite:///:memory:",
                 "postgresql+asyncpg://postgres@127.0.0.1/junction"):
        assert settings_from_mapping({"stores": {"documents": kept},
                                      "security": {"encryption_keys": []}}).stores.documents == kept
