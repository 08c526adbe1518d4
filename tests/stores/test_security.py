"""API key format and verification; AES-GCM sealing of credentials, rotation, key configuration."""

from __future__ import annotations

import base64
import stat
from pathlib import Path

import pytest

from junction.errors import ConfigError
from junction.security.api_keys import generate_api_key, hash_api_key, key_prefix, verify_api_key
from junction.security.crypto import (
    KEY_FILE,
    Cipher,
    CredentialUnreadable,
    EncryptionKey,
    SealedBlob,
    cipher_from_settings,
)
from junction.settings import settings_from_mapping
from tests.stores.conftest import NEW_KEY, OLD_KEY

BINDING = b"org_a\x00openai"


def test_generated_keys_are_unique_well_formed_and_verify() -> None:
    keys = [generate_api_key() for _ in range(200)]
    assert len({key.key for key in keys}) == len({key.prefix for key in keys}) == 200
    for generated in keys[:5]:
        assert key_prefix(generated.key) == generated.prefix
        assert verify_api_key(generated.key, generated.secret_hash)
        assert generated.key not in repr(generated)
    assert not verify_api_key(keys[0].key, keys[1].secret_hash)
    assert hash_api_key(keys[0].key) == keys[0].secret_hash and len(keys[0].secret_hash) == 64


@pytest.mark.parametrize(
    "presented",
    [
        "",
        "sk-jn-",
        "sk-junction-abc",
        "Bearer sk-jn-x",
        "sk-jn-ABCDEF012345-" + "a" * 43,
        "sk-jn-0123456789ab-" + "a" * 42,
        "sk-jn-0123456789ab-" + "a" * 43 + "\n",
    ],
)
def test_malformed_keys_have_no_prefix(presented: str) -> None:
    assert key_prefix(presented) is None


def test_sealed_credentials_open_only_with_their_binding_and_intact() -> None:
    cipher = Cipher([OLD_KEY])
    sealed = cipher.seal(b"sk-provider-secret", BINDING)
    assert sealed.key_id == OLD_KEY.id and b"sk-provider-secret" not in sealed.blob
    assert cipher.seal(b"sk-provider-secret", BINDING).blob != sealed.blob  # fresh nonce each time
    assert cipher.open(sealed, BINDING) == b"sk-provider-secret"

    with pytest.raises(CredentialUnreadable):
        cipher.open(sealed, b"org_b\x00openai")  # copied onto another org's row
    flipped = bytearray(sealed.blob)
    flipped[-1] ^= 1
    with pytest.raises(CredentialUnreadable):
        cipher.open(SealedBlob(key_id=sealed.key_id, blob=bytes(flipped)), BINDING)
    with pytest.raises(CredentialUnreadable, match="not configured"):
        Cipher([NEW_KEY]).open(sealed, BINDING)


def test_newest_key_seals_and_every_key_opens() -> None:
    old_blob = Cipher([OLD_KEY]).seal(b"x", BINDING)
    rotated = Cipher([NEW_KEY, OLD_KEY])
    assert rotated.open(old_blob, BINDING) == b"x"
    assert rotated.seal(b"x", BINDING).key_id == NEW_KEY.id
    assert rotated.is_current(NEW_KEY.id) and not rotated.is_current(OLD_KEY.id)


def test_cipher_rejects_bad_key_sets() -> None:
    with pytest.raises(ConfigError):
        Cipher([])
    with pytest.raises(ConfigError, match="unique"):
        Cipher([OLD_KEY, EncryptionKey(id=OLD_KEY.id, material=NEW_KEY.material)])
    with pytest.raises(ConfigError, match="32 bytes"):
        Cipher([EncryptionKey(id="short", material=b"0" * 16)])
    assert OLD_KEY.material.hex() not in repr(OLD_KEY)


def test_configured_keys_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_JUNCTION_KEY_NEW", base64.b64encode(NEW_KEY.material).decode())
    monkeypatch.setenv("TEST_JUNCTION_KEY_OLD", base64.b64encode(OLD_KEY.material).decode())
    settings = settings_from_mapping(
        {
            "stores": {"documents": "postgresql+asyncpg://db/junction"},
            "security": {
                "encryption_keys": [
                    {"id": "k2", "key": {"env": "TEST_JUNCTION_KEY_NEW"}},
                    {"id": "k1", "key": {"env": "TEST_JUNCTION_KEY_OLD"}},
                ]
            },
        }
    )
    cipher = cipher_from_settings(settings)
    assert cipher.newest_key_id == "k2"
    assert cipher.open(Cipher([OLD_KEY]).seal(b"legacy", BINDING), BINDING) == b"legacy"


def test_malformed_configured_key_names_the_setting() -> None:
    settings = settings_from_mapping({"security": {"encryption_keys": [{"id": "k1", "key": "not-base64!"}]}})
    with pytest.raises(ConfigError, match=r"security\.encryption_keys\[0\]\.key"):
        cipher_from_settings(settings)
    with pytest.raises(ConfigError, match="unknown key"):
        settings_from_mapping({"security": {"encryption_keys": [{"id": "k1", "key": "x", "extra": 1}]}})


def test_embedded_default_generates_one_private_key_file(tmp_path: Path) -> None:
    settings = settings_from_mapping({"server": {"data_dir": str(tmp_path / "data")}})
    first = cipher_from_settings(settings)
    key_file = tmp_path / "data" / KEY_FILE
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    contents = key_file.read_text()

    second = cipher_from_settings(settings)  # a restart, or another worker
    assert key_file.read_text() == contents
    assert second.open(first.seal(b"kept across restarts", BINDING), BINDING) == b"kept across restarts"
    assert [path.name for path in key_file.parent.iterdir()] == [KEY_FILE]  # no temp files left


def test_shared_documents_store_requires_configured_keys(tmp_path: Path) -> None:
    settings = settings_from_mapping(
        {"server": {"data_dir": str(tmp_path)}, "stores": {"documents": "mongodb://127.0.0.1/junction"}}
    )
    with pytest.raises(ConfigError, match="security.encryption_keys"):
        cipher_from_settings(settings)
    assert not (tmp_path / KEY_FILE).exists()
