"""`junction init`: a commented junction.toml with every section, that loads and validates as
written, keeps secrets in `{ env = ... }` and never replaces an existing file."""

from __future__ import annotations

import re
import stat
from pathlib import Path

import msgspec
import pytest

from junction.cli import main
from junction.plugins.manager import load_plugins
from junction.settings import CONFIG_ENV_VAR, Settings, load_settings, settings_from_mapping


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(CONFIG_ENV_VAR, raising=False)
    for variable in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "GROQ_API_KEY",
                     "MISTRAL_API_KEY", "OPENROUTER_API_KEY", "JUNCTION_MASTER_KEY"):
        monkeypatch.delenv(variable, raising=False)
    return tmp_path


def test_init_writes_a_config_that_loads_and_starts(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["init"]) == 0
    written = workdir / "junction.toml"
    assert "wrote junction.toml" in capsys.readouterr().err
    assert stat.S_IMODE(written.stat().st_mode) == 0o600
    settings = load_settings()  # found in the working directory, as `junction serve` would
    assert settings.source == str(written)
    assert settings == msgspec.structs.replace(settings_from_mapping({}), source=str(written))  # the defaults
    loaded = load_plugins(settings)  # plugin tables and the pipeline validate too
    assert "master-key" in loaded.stage_order or loaded.authenticators


def test_every_section_is_in_the_file(workdir: Path) -> None:
    assert main(["init"]) == 0
    text = (workdir / "junction.toml").read_text(encoding="utf-8")
    tables = set(re.findall(r"^#? ?\[([a-z]+)[.\]]", text, flags=re.MULTILINE))
    assert tables == {field.name for field in msgspec.structs.fields(Settings) if field.name != "source"}


def test_secrets_are_environment_references(workdir: Path) -> None:
    assert main(["init"]) == 0
    text = (workdir / "junction.toml").read_text(encoding="utf-8")
    for key in ("api_key", "master_key", "webhook_secret", "key"):
        for line in re.findall(rf"^#? ?{key} = .*$", text, flags=re.MULTILINE):
            assert "{ env = " in line, line


def test_the_commented_examples_are_valid_once_uncommented(workdir: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    assert main(["init"]) == 0
    text = (workdir / "junction.toml").read_text(encoding="utf-8")
    example = re.compile(r"^# (\[[^\]]+\]|[a-z_]+ = .*)$")
    uncommented = "\n".join(example.sub(r"\1", line) for line in text.splitlines())
    for variable in set(re.findall(r'\{ env = "([A-Z_]+)" \}', uncommented)):
        monkeypatch.setenv(variable, "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3I=")
    (workdir / "junction.toml").write_text(uncommented, encoding="utf-8")
    settings = load_settings()
    assert settings.providers["openai"]["api_key"].startswith("c2Vj")
    assert settings.security.encryption_keys[0].id == "k1"
    loaded = load_plugins(settings, instantiate=False)  # plugin tables' keys are real keys
    assert {"openai", "anthropic", "jwt", "rate-limit"} <= {info.name for info in loaded.infos if info.enabled}


def test_init_refuses_to_overwrite(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (workdir / "junction.toml").write_text("[server]\nport = 9000\n", encoding="utf-8")
    assert main(["init"]) == 1
    assert "already exists" in capsys.readouterr().err
    assert (workdir / "junction.toml").read_text(encoding="utf-8") == "[server]\nport = 9000\n"
    assert main(["init", "other.toml"]) == 0 and (workdir / "other.toml").is_file()
