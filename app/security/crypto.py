"""AES-256-GCM sealing of stored provider credentials, with key rotation.

Keys are configured newest first (``[security] encryption_keys``): the first seals, all open, so
rotating is "add the new key at the top, run the re-encrypt helper, later drop the old key".
Each sealed blob is ``nonce (12 bytes) || ciphertext+tag`` and is stored beside the id of the key
that sealed it. Callers bind a blob to its owner with ``associated_data`` (org and provider), so a
blob copied onto another org's row fails to open instead of leaking across orgs.

With no configured key and a SQLite (single-node) documents store, a key is generated once into
``<data_dir>/junction-encryption-key`` (owner-only), like the master key. A shared store
(PostgreSQL, MongoDB) needs the same key on every node, so there it must be configured.
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
from pathlib import Path
from typing import Any

import msgspec

from junction.errors import ConfigError, JunctionError
from junction.security.private_files import create_private_file_once
from junction.settings import Settings

KEY_BYTES = 32
NONCE_BYTES = 12
KEY_FILE = "junction-encryption-key"
GENERATED_KEY_ID = "local-1"


class CredentialUnreadable(JunctionError):
    """A stored credential cannot be opened: its key is no longer configured, or it was altered."""


class EncryptionKey(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    material: bytes

    def __repr__(self) -> str:
        return f"EncryptionKey(id={self.id!r}, material=<redacted>)"


class SealedBlob(msgspec.Struct, frozen=True, kw_only=True):
    key_id: str
    blob: bytes


class Cipher:
    """Seals with the newest key, opens with whichever key id a blob names."""

    def __init__(self, keys: list[EncryptionKey]) -> None:
        if not keys:
            raise ConfigError("security.encryption_keys: at least one key is needed")
        ids = [key.id for key in keys]
        if len(set(ids)) != len(ids):
            raise ConfigError("security.encryption_keys: key ids must be unique")
        for key in keys:
            if len(key.material) != KEY_BYTES:
                raise ConfigError(f"security.encryption_keys: key {key.id!r} must be {KEY_BYTES} bytes")
        self.newest_key_id = keys[0].id
        self._keys = {key.id: key.material for key in keys}
        self._aeads: dict[str, Any] = {}

    def seal(self, plaintext: bytes, associated_data: bytes) -> SealedBlob:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._aead(self.newest_key_id).encrypt(nonce, plaintext, associated_data)
        return SealedBlob(key_id=self.newest_key_id, blob=nonce + sealed)

    def open(self, sealed: SealedBlob, associated_data: bytes) -> bytes:
        if sealed.key_id not in self._keys:
            raise CredentialUnreadable(
                f"credential sealed with encryption key {sealed.key_id!r}, which is not configured"
            )
        aead = self._aead(sealed.key_id)
        from cryptography.exceptions import InvalidTag

        try:
            return aead.decrypt(sealed.blob[:NONCE_BYTES], sealed.blob[NONCE_BYTES:], associated_data)
        except InvalidTag:
            raise CredentialUnreadable("stored credential failed authentication (altered or moved)") from None

    def _aead(self, key_id: str) -> Any:
        # Built on first use, and cryptography imported then: its OpenSSL is ~8 MB of a worker that
        # may never open a stored credential.
        aead = self._aeads.get(key_id)
        if aead is None:
            from cryptography.hazmat.primitives.ciphers.aead import AESGCM

            aead = self._aeads[key_id] = AESGCM(self._keys[key_id])
        return aead

    def is_current(self, key_id: str) -> bool:
        return key_id == self.newest_key_id


def decode_key_material(text: str, where: str) -> bytes:
    try:
        material = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        material = b""
    if len(material) != KEY_BYTES:
        raise ConfigError(
            f"{where}: must be {KEY_BYTES} random bytes, base64-encoded (e.g. `openssl rand -base64 32`)"
        )
    return material


def new_key_material_text() -> str:
    return base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode("ascii")


def ensure_local_key_file(data_dir: str | os.PathLike[str]) -> Path:
    """Create ``<data_dir>/junction-encryption-key`` once (0600, race-safe), return its path."""
    path = Path(data_dir) / KEY_FILE
    create_private_file_once(path, new_key_material_text() + "\n")
    return path


def cipher_from_settings(settings: Settings, *, create_key_file: bool = True) -> Cipher:
    """The configured keys; for a SQLite documents store without keys, the generated key file.
    ``create_key_file=False`` (validating a config before anything is written): a key held in
    memory stands in for a key file that does not exist yet."""
    configured = settings.security.encryption_keys
    if configured:
        return Cipher(
            [
                EncryptionKey(
                    id=entry.id,
                    material=decode_key_material(
                        entry.key, f"{settings.source}: security.encryption_keys[{index}].key"
                    ),
                )
                for index, entry in enumerate(configured)
            ]
        )
    if not settings.stores.documents.startswith("sqlite"):
        raise ConfigError(
            f"{settings.source}: security.encryption_keys: required when the documents "
            "store is shared (every node must seal credentials with the same key)"
        )
    path = Path(settings.server.data_dir) / KEY_FILE
    if not create_key_file and not path.exists():
        return Cipher([EncryptionKey(id=GENERATED_KEY_ID, material=secrets.token_bytes(KEY_BYTES))])
    path = ensure_local_key_file(settings.server.data_dir)
    material = decode_key_material(path.read_text(encoding="ascii"), str(path))
    return Cipher([EncryptionKey(id=GENERATED_KEY_ID, material=material)])
