"""Key-encryption keys (KEKs): what wraps each content's data key.

Embedded default: one file per KEK under `keys_dir/kek/<id>.key`, and a pointer file
`current` naming the one new data keys are wrapped with. Rotating makes a new KEK current;
the rows wrapped by older ones are rewrapped by the repository (content bytes are never
touched), and an old KEK stays loadable until it is retired explicitly.

A KEK file is not the bare key: it is sealed by the keyring's master key (its own HKDF
purpose). In production the master key comes from the environment, not the disk, so a copy
of the data directory — blobs, SQLite database and key files together — decrypts nothing.

Wrapping is AES-256-GCM with the KEK, a random nonce, and the KEK id as additional data:
`wrapped = nonce (12) | ciphertext (32) | tag (16)`.
"""

from __future__ import annotations

import base64
import os
import re
import secrets
import threading
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from partage.config import Settings
from partage.documents.durable import fsync_directory
from partage.security.keyring import Keyring

KEK_DIR = "kek"
POINTER = "current"
SEAL_PURPOSE = "documents-kek-file"
_NONCE = 12
_ID = re.compile(r"^[0-9a-f]{16}$")


class UnknownKek(LookupError):
    """No key file for this KEK id (never made here, or retired)."""


class KeyUnwrapError(ValueError):
    """The wrapped key does not open under the KEK it names."""


class KeyEncryptionKeys:
    """The KEKs of one key directory. Safe to share between threads; several processes may
    use one directory (another process's rotation is noticed at the next wrap)."""

    def __init__(self, directory: Path, keyring: Keyring) -> None:
        self._dir = directory
        self._keyring = keyring
        self._lock = threading.Lock()
        self._keys: dict[str, AESGCM] = {}
        self._current: str | None = None
        # The pointer file's identity when last read: os.replace gives it a new inode, so a
        # stat is enough to notice a rotation made by another process.
        self._seen: tuple[int, int] | None = None

    @classmethod
    def from_settings(cls, settings: Settings, keyring: Keyring) -> KeyEncryptionKeys:
        return cls(settings.keys_dir / KEK_DIR, keyring)

    @property
    def current_id(self) -> str:
        pointer = self._dir / POINTER
        try:
            stat = pointer.stat()
        except FileNotFoundError:
            return self._create_first()
        seen = (stat.st_ino, stat.st_mtime_ns)
        if seen != self._seen or self._current is None:
            with self._lock:
                self._current = _check_id(pointer.read_text().strip())
                self._seen = seen
        return self._current

    def ids(self) -> list[str]:
        """Every KEK with a key file, current or not."""
        if not self._dir.exists():
            return []
        return sorted(p.stem for p in self._dir.glob("*.key") if _ID.match(p.stem))

    def wrap(self, data_key: bytes) -> tuple[str, bytes]:
        kek_id = self.current_id
        nonce = os.urandom(_NONCE)
        return kek_id, nonce + self._aead(kek_id).encrypt(nonce, data_key, kek_id.encode())

    def unwrap(self, kek_id: str, wrapped: bytes) -> bytes:
        aead = self._aead(kek_id)
        try:
            return aead.decrypt(wrapped[:_NONCE], wrapped[_NONCE:], kek_id.encode())
        except InvalidTag:
            raise KeyUnwrapError(f"the data key does not open under KEK {kek_id}") from None

    def rotate(self) -> str:
        """Make a new KEK current; returns its id. Keys wrapped before stay readable."""
        self._dir.mkdir(parents=True, exist_ok=True)
        kek_id = self._new_key_file()
        tmp = self._dir / f".{POINTER}.{secrets.token_hex(4)}"
        _write_durably(tmp, kek_id)
        os.replace(tmp, self._dir / POINTER)
        fsync_directory(self._dir)
        return kek_id

    def retire(self, kek_id: str) -> None:
        """Delete a KEK's file: whatever it still wraps becomes unreadable, so the caller
        checks first that nothing does (`Repository.retire_kek`)."""
        if kek_id == self.current_id:
            raise ValueError("the current KEK cannot be retired")
        (self._dir / f"{_check_id(kek_id)}.key").unlink(missing_ok=True)
        fsync_directory(self._dir)
        with self._lock:
            self._keys.pop(kek_id, None)

    def _aead(self, kek_id: str) -> AESGCM:
        aead = self._keys.get(kek_id)
        if aead is None:
            path = self._dir / f"{_check_id(kek_id)}.key"
            try:
                sealed = base64.b64decode(path.read_text().strip(), validate=True)
            except FileNotFoundError:
                raise UnknownKek(f"no key file for KEK {kek_id}") from None
            try:
                key = self._keyring.unseal(sealed, purpose=SEAL_PURPOSE, aad=kek_id.encode())
            except InvalidTag:
                raise KeyUnwrapError(f"the key file of KEK {kek_id} does not open") from None
            aead = AESGCM(key)
            with self._lock:
                self._keys[kek_id] = aead
        return aead

    def _new_key_file(self) -> str:
        key = secrets.token_bytes(32)
        while True:
            kek_id = secrets.token_hex(8)
            sealed = self._keyring.seal(key, purpose=SEAL_PURPOSE, aad=kek_id.encode())
            try:
                # O_EXCL: never overwrite a key something may already be wrapped with.
                fd = os.open(
                    self._dir / f"{kek_id}.key", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600
                )
            except FileExistsError:
                continue
            with os.fdopen(fd, "w") as handle:
                handle.write(base64.b64encode(sealed).decode() + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            fsync_directory(self._dir)
            return kek_id

    def _create_first(self) -> str:
        """The first KEK, made once even when several processes start together: the pointer
        is published with link(), which fails if another process published one first."""
        self._dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self._dir, 0o700)
        kek_id = self._new_key_file()
        tmp = self._dir / f".{POINTER}.{secrets.token_hex(4)}"
        _write_durably(tmp, kek_id)
        try:
            os.link(tmp, self._dir / POINTER)
        except FileExistsError:
            # Another process won: its KEK is current, ours was never used.
            (self._dir / f"{kek_id}.key").unlink()
        finally:
            tmp.unlink()
        fsync_directory(self._dir)
        return self.current_id


def _check_id(kek_id: str) -> str:
    # Ids come from database rows and name files: nothing but what we make is accepted.
    if not _ID.match(kek_id):
        raise UnknownKek(f"not a KEK id: {kek_id!r}")
    return kek_id


def _write_durably(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text + "\n")
        handle.flush()
        os.fsync(handle.fileno())
