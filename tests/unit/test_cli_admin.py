"""The admin commands as an operator uses them on the embedded default: a table by default and
JSON lines with --json, org rename and delete, credential re-encryption after a key rotation, and
names and scopes refused with a message naming the field."""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from junction.cli import main
from junction.domain.commands import admin_stores
from junction.settings import CONFIG_ENV_VAR, load_settings
from junction.stores.documents.protocol import ProviderSecret

OLD = base64.b64encode(b"o" * 32).decode()
NEW = base64.b64encode(b"n" * 32).decode()


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv(CONFIG_ENV_VAR, raising=False)
    path = tmp_path / "junction.toml"
    path.write_text(f'[server]\ndata_dir = "{tmp_path}"\n', encoding="utf-8")
    return path


def run(capsys: pytest.CaptureFixture[str], config: Path, *args: str) -> tuple[int, str, str]:
    status = main([*args, "--config", str(config)])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_tables_by_default_json_lines_for_scripts(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, config, "orgs", "create", "Acme Labs")
    header, row = out.splitlines()
    assert status == 0 and header.split() == ["ID", "NAME", "RPM", "TPM", "BUDGET_USD", "BUDGET_PERIOD", "CREATED_AT"]
    assert row.startswith("org_") and "Acme Labs" in row
    status, out, _ = run(capsys, config, "orgs", "list", "--json")
    [org] = [json.loads(line) for line in out.splitlines()]
    assert org["name"] == "Acme Labs" and row.startswith(org["id"])
    status, out, _ = run(capsys, config, "keys", "create", "--org", org["id"], "--name", "ci", "--json")
    issued = json.loads(out)
    assert issued["key"].startswith("sk-jn-") and issued["scopes"] == ["chat"]
    status, out, _ = run(capsys, config, "keys", "list", "--org", org["id"])
    header, row = out.splitlines()
    assert "KEY" not in header.split() and issued["key"] not in out and row.split()[:3] == [issued["id"], org["id"], "ci"]


def test_orgs_rename_and_delete(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run(capsys, config, "orgs", "create", "Old name")
    [org] = [json.loads(line) for line in run(capsys, config, "orgs", "list", "--json")[1].splitlines()]
    status, out, _ = run(capsys, config, "orgs", "rename", org["id"], "  New name ", "--json")
    assert status == 0 and json.loads(out)["name"] == "New name"
    with pytest.raises(SystemExit):  # deleting cannot be undone: --yes is required
        run(capsys, config, "orgs", "delete", org["id"])
    assert run(capsys, config, "orgs", "delete", org["id"], "--yes", "--json")[0] == 0
    assert run(capsys, config, "orgs", "list", "--json")[1] == ""
    status, _, err = run(capsys, config, "orgs", "rename", org["id"], "x")
    assert status == 1 and org["id"] in err


@pytest.mark.parametrize(("args", "message"), [
    (("orgs", "create", "   "), "junction: name: must not be empty"),
    (("keys", "create", "--org", "{org}", "--name", "x", "--scope", "superuser"),
     "junction: scopes[0]: unknown scope 'superuser' (known: chat, admin)"),
    (("keys", "create", "--org", "{org}", "--name", "x", "--scope", "chat", "--scope", "Admin"),
     "junction: scopes[1]: unknown scope 'Admin' (known: chat, admin)"),
    (("keys", "create", "--org", "{org}", "--name", ""), "junction: name: must not be empty"),
    (("orgs", "rename", "{org}", ""), "junction: name: must not be empty"),
])
def test_bad_names_and_scopes_are_refused_naming_the_field(config: Path, capsys: pytest.CaptureFixture[str],
                                                          args: tuple[str, ...], message: str) -> None:
    run(capsys, config, "orgs", "create", "Acme")
    [org] = [json.loads(line) for line in run(capsys, config, "orgs", "list", "--json")[1].splitlines()]
    status, out, err = run(capsys, config, *(arg.format(org=org["id"]) for arg in args))
    assert (status, out, err.strip()) == (1, "", message)
    assert len(run(capsys, config, "orgs", "list", "--json")[1].splitlines()) == 1  # nothing created


def test_credentials_reencrypt_after_a_key_rotation(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = config.read_text(encoding="utf-8")
    config.write_text(base + f'[security]\nencryption_keys = [{{ id = "old", key = "{OLD}" }}]\n', encoding="utf-8")
    run(capsys, config, "orgs", "create", "Acme")
    [org] = [json.loads(line) for line in run(capsys, config, "orgs", "list", "--json")[1].splitlines()]

    async def put_and_read(settings, put: bool) -> tuple[str, str | None]:
        async with admin_stores(settings) as store:
            if put:
                await store.credentials.put(org["id"], "openai", ProviderSecret(api_key="sk-org-secret"))
            [credential] = await store.credentials.list(org["id"])
            secret = await store.credentials.reveal(org["id"], "openai")
            return credential.key_id, secret.api_key if secret else None

    assert asyncio.run(put_and_read(load_settings(config), put=True)) == ("old", "sk-org-secret")
    config.write_text(base + f'[security]\nencryption_keys = [{{ id = "new", key = "{NEW}" }}, '
                      f'{{ id = "old", key = "{OLD}" }}]\n', encoding="utf-8")
    status, out, _ = run(capsys, config, "credentials", "reencrypt")
    assert status == 0 and out.split() == ["RESEALED", "1"]
    assert json.loads(run(capsys, config, "credentials", "reencrypt", "--json")[1]) == {"resealed": 0}
    config.write_text(base + f'[security]\nencryption_keys = [{{ id = "new", key = "{NEW}" }}]\n', encoding="utf-8")
    assert asyncio.run(put_and_read(load_settings(config), put=False)) == ("new", "sk-org-secret")


def test_admin_commands_import_neither_litestar_nor_the_runtime(config: Path) -> None:
    code = ("import sys; from junction.cli import main; main(['orgs', 'list', '--config', sys.argv[1]]); "
            "print(sorted(m for m in ('litestar', 'junction.runtime', 'aiohttp', 'taskiq') if m in sys.modules))")
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", code, str(config)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "[]", f"took {time.perf_counter() - started:.2f}s"


def test_plugins_as_json_lines(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, config, "plugins", "--json")
    plugins = {row["name"]: row for row in map(json.loads, out.splitlines())}
    assert status == 0 and plugins["master-key"]["kind"] == "middleware" and plugins["master-key"]["enabled"]
    assert plugins["authorize"]["phase"] == "auth" and plugins["authorize"]["position"] >= 1
