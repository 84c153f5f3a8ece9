"""The platform's secret keys, all derived from one master key.

The master key comes from `PARTAGE_MASTER_KEY` (production) or from a key file under
`var/keys/` made on first use (development). Each purpose gets its own HKDF subkey, so a
key used to chain the audit log is never the key that wraps a signing key or peppers a
client secret.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from functools import cache
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from partage.config import ConfigurationError, Settings

MASTER_KEY_FILE = "master.key"
NONCE_BYTES = 12


class Keyring:
    def __init__(self, master_key: bytes) -> None:
        if len(master_key) != 32:
            raise ConfigurationError("the master key must be 32 bytes")
        self._master = master_key

    @classmethod
    def from_settings(cls, settings: Settings) -> Keyring:
        if settings.master_key:
            try:
                key = base64.b64decode(settings.master_key, validate=True)
            except ValueError as exc:
                raise ConfigurationError("PARTAGE_MASTER_KEY is not valid base64") from exc
            return cls(key)
        return cls(_load_or_create_key_file(settings.keys_dir / MASTER_KEY_FILE))

    @cache  # noqa: B019 - one keyring per process, a handful of purposes
    def subkey(self, purpose: str) -> bytes:
        return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose.encode()).derive(
            self._master
        )

    def mac(self, purpose: str, data: bytes) -> str:
        return hmac.new(self.subkey(purpose), data, hashlib.sha256).hexdigest()

    def seal(self, plaintext: bytes, *, purpose: str, aad: bytes = b"") -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return nonce + AESGCM(self.subkey(purpose)).encrypt(nonce, plaintext, aad)

    def unseal(self, sealed: bytes, *, purpose: str, aad: bytes = b"") -> bytes:
        nonce, body = sealed[:NONCE_BYTES], sealed[NONCE_BYTES:]
        return AESGCM(self.subkey(purpose)).decrypt(nonce, body, aad)


def _load_or_create_key_file(path: Path) -> bytes:
    if path.exists():
        return base64.b64decode(path.read_text().strip())
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    key = secrets.token_bytes(32)
    # O_EXCL: two processes starting at once must not each write a different key.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return base64.b64decode(path.read_text().strip())
    with os.fdopen(fd, "w") as handle:
        handle.write(base64.b64encode(key).decode() + "\n")
    return key
