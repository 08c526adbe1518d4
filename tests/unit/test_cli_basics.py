"""The command line's first impressions: --version, help for a bare `junction`, and the config
file found in the working directory."""

from __future__ import annotations

import os
from importlib.metadata import version
from pathlib import Path

import pytest

from junction.cli import main
from junction.settings import CONFIG_ENV_VAR, load_settings


def test_version_prints_the_installed_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.strip() == f"junction {version('junction-gateway')}"


def test_bare_junction_prints_help_and_succeeds(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: junction") and "serve" in out and "migrate" in out


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(CONFIG_ENV_VAR, raising=False)
    return tmp_path


def test_a_junction_toml_in_the_working_directory_is_used(workdir: Path) -> None:
    assert load_settings().source == "built-in defaults"
    (workdir / "junction.toml").write_text("[server]\nport = 9123\n", encoding="utf-8")
    settings = load_settings()
    assert settings.server.port == 9123 and settings.source == str(workdir / "junction.toml")


def test_the_environment_and_the_flag_win_over_the_working_directory(workdir: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    (workdir / "junction.toml").write_text("[server]\nport = 9123\n", encoding="utf-8")
    (workdir / "env.toml").write_text("[server]\nport = 9124\n", encoding="utf-8")
    (workdir / "flag.toml").write_text("[server]\nport = 9125\n", encoding="utf-8")
    monkeypatch.setenv(CONFIG_ENV_VAR, str(workdir / "env.toml"))
    assert load_settings().server.port == 9124
    assert load_settings(workdir / "flag.toml").server.port == 9125


def test_plugins_from_the_working_directory_config(workdir: Path, capsys: pytest.CaptureFixture[str],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    (workdir / "junction.toml").write_text('[providers.openai]\napi_key = "sk-x"\n', encoding="utf-8")
    assert main(["plugins"]) == 0
    openai_row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("openai "))
    assert openai_row.rstrip().endswith("yes")
    # serve's workers are other processes: they are pointed at the same file
    assert os.environ[CONFIG_ENV_VAR] == str(workdir / "junction.toml")
