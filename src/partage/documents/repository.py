"""The document repository: contents stored once, encrypted at rest, crash-safe (ADR 0010).

A content is filed under the SHA-256 of its plain bytes (`DocumentContent`), encrypted under
a data key of its own (`envelope`), that key wrapped by a key-encryption key (`keys`), the
encrypted bytes kept by a store (`stores`): locally appended to a pack (`packs`), under a
key saying where they lie; in an object store, under a random name. Neither says anything
of the content.

A deposit goes, for each content:

    prepared = repository.prepare(content)    # CPU only, any thread
    staged = repository.stage(prepared)       # the bytes durable, before the commit
    try:
        with transaction(sessions) as session:
            ...                               # INSERT the row (staged.prepared's key)
                                              # ON CONFLICT DO NOTHING, etc.
    except BaseException:
        repository.abandoned(staged)          # drop what was staged
        raise
    repository.committed(staged)              # drop it if another row won

Whatever happens in between (an error, kill -9, a power cut), `recover` at the next start
leaves every committed content readable and nothing staged for a content without a row.
Given `sessions` (the platform's read sessions), the repository looks rows up itself:
`stage` writes nothing for a content already stored, and `committed` keeps the staged bytes
only if the committed row names them — it may not: a content deposited twice at once (or
twice in one submission) gets one row, and the other deposit's bytes are dropped.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from partage.config import Settings
from partage.db import transaction
from partage.documents import envelope
from partage.documents.envelope import ContentCorrupted
from partage.documents.keys import KeyEncryptionKeys, KeyUnwrapError, UnknownKek
from partage.documents.models import DocumentContent
from partage.documents.packs import PackKey
from partage.documents.stores import BlobNotFound, ContentStore, LocalFileStore, open_store
from partage.security.keyring import Keyring

__all__ = [
    "ContentCorrupted",
    "ContentMissing",
    "KekInUse",
    "PreparedContent",
    "RecoveryReport",
    "Repository",
    "RotationReport",
    "StagedContent",
    "recover_contents",
]

log = logging.getLogger(__name__)

SCHEME = "aes256gcm-seg/1"
# An object a remote store holds without a row is only taken for an orphan once older than
# this: a deposit in flight has staged it and not yet committed its row.
ORPHAN_GRACE_SECONDS = 3600
# Segments read from the store at a time by open_stream (1 MiB of content).
_STREAM_SEGMENTS = 16
_LOOKUP_BATCH = 500


class ContentMissing(ContentCorrupted):
    """The row exists, the stored bytes do not."""


class KekInUse(RuntimeError):
    """A KEK still wraps data keys: retiring it would make contents unreadable."""


@dataclass(frozen=True, slots=True)
class PreparedContent:
    """A content ready to store: its row's values and its encrypted bytes."""

    sha256: str
    size: int
    storage_key: str
    scheme: str
    kek_id: str
    wrapped_key: bytes
    encrypted: bytes | bytearray = field(repr=False)

    def row(self) -> DocumentContent:
        return DocumentContent(
            sha256=self.sha256,
            size=self.size,
            storage_key=self.storage_key,
            scheme=self.scheme,
            kek_id=self.kek_id,
            wrapped_key=self.wrapped_key,
        )


@dataclass(slots=True)
class StagedContent:
    prepared: PreparedContent
    # False when the content was already stored: nothing was written, nothing to undo.
    written: bool


@dataclass(frozen=True, slots=True)
class RotationReport:
    kek_id: str  # the current KEK, that every row is now wrapped with
    rewrapped: int
    previous: tuple[str, ...]  # the KEKs rows were rewrapped from: retire them next


@dataclass(frozen=True, slots=True)
class RecoveryReport:
    finished: int  # staged objects whose row was committed, now in place
    removed: int  # staged or orphan objects (or spans of packs) without a row, deleted


class Repository:
    def __init__(
        self,
        store: ContentStore,
        keks: KeyEncryptionKeys,
        *,
        sessions: sessionmaker[Session] | None = None,
    ) -> None:
        self.store = store
        self.keks = keks
        # For the lookups of `stage` and `committed`: read sessions, that never queue
        # behind writers. Without them every stage writes and every commit promotes.
        self._sessions = sessions

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        keyring: Keyring,
        *,
        sessions: sessionmaker[Session] | None = None,
    ) -> Repository:
        return cls(
            open_store(settings),
            KeyEncryptionKeys.from_settings(settings, keyring),
            sessions=sessions,
        )

    # -- deposit ---------------------------------------------------------------------------

    def prepare(self, content: bytes) -> PreparedContent:
        """Hash and encrypt `content` (no I/O but a stat of the KEK pointer; thread-safe)."""
        digest = hashlib.sha256(content).digest()
        data_key = envelope.new_data_key()
        encrypted = envelope.seal(data_key, content, binding=digest)
        kek_id, wrapped = self.keks.wrap(data_key)
        return PreparedContent(
            sha256=digest.hex(),
            size=len(content),
            # Random, not derived from the hash: the name reveals nothing about the content,
            # and two deposits racing with the same new content each write an object of
            # their own (different data keys, so different bytes) instead of overwriting
            # one another's under a shared name.
            storage_key=os.urandom(16).hex(),
            scheme=SCHEME,
            kek_id=kek_id,
            wrapped_key=wrapped,
            encrypted=encrypted,
        )

    def stage(
        self, prepared: PreparedContent, *, already_stored: bool | None = None
    ) -> StagedContent:
        """Write the encrypted bytes durably, before the transaction inserting the row
        commits (not inside it: the fsyncs would hold SQLite's write lock). A content
        already stored is not written again (`already_stored`: the caller looked it up).
        The staged content's `prepared.storage_key` is the key its row must hold."""
        if already_stored is None:
            already_stored = self._stored_key(prepared.sha256) is not None
        if already_stored:
            return StagedContent(prepared, written=False)
        if isinstance(self.store, LocalFileStore):
            key = self.store.append(prepared.encrypted)
            return StagedContent(replace(prepared, storage_key=key), written=True)
        # Written under its final name; recovery deletes it if no row ever names it.
        self.store.put(prepared.storage_key, prepared.encrypted)
        return StagedContent(prepared, written=True)

    def committed(self, staged: StagedContent, *, row_written: bool | None = None) -> None:
        """After the commit: drop the staged bytes if another deposit's row won
        (`row_written`: the caller knows whether its row was the one written). Never
        raises: the deposit is committed whatever happens here, and recovery finishes what
        this could not."""
        if not staged.written:
            return
        key = staged.prepared.storage_key
        try:
            if row_written is None and self._sessions is not None:
                row_written = self._stored_key(staged.prepared.sha256) == key
            if row_written is False:
                self.store.delete(key)
        except Exception:
            log.exception("staged content %s left for recovery", key)

    def abandoned(self, staged: StagedContent) -> None:
        """After a rollback: remove what this deposit staged. Never raises."""
        if not staged.written:
            return
        try:
            self.store.delete(staged.prepared.storage_key)
        except Exception:
            log.exception("staged content %s left for recovery", staged.prepared.storage_key)

    def _stored_key(self, sha256: str) -> str | None:
        """The storage key of the committed row for this hash, if there is one."""
        if self._sessions is None:
            return None
        with self._sessions() as session:
            return session.scalar(
                select(DocumentContent.storage_key).where(DocumentContent.sha256 == sha256)
            )

    # -- retrieval -------------------------------------------------------------------------

    def read(self, row: DocumentContent) -> bytes:
        """The whole plain content, its SHA-256 and size verified."""
        data_key = self._data_key(row)
        stored = self._get(row.storage_key)
        plain = envelope.open_all(data_key, stored, size=row.size, binding=_digest(row))
        if len(plain) != row.size or hashlib.sha256(plain).hexdigest() != row.sha256:
            raise ContentCorrupted(f"content {row.sha256} does not match its hash")
        return bytes(plain)

    def read_range(self, row: DocumentContent, start: int, end: int) -> bytes:
        """Plain bytes [start, end) (as `content[start:end]` would), reading and decrypting only
        the segments they fall in. Each segment's tag proves it is that segment of the
        content filed under this hash; the whole-file hash cannot be checked without
        reading the whole file."""
        if start < 0 or end < start:
            raise ValueError("invalid range")
        data_key = self._data_key(row)
        end = min(end, row.size)
        if start >= end:
            return b""
        header = envelope.Header.parse(self._get_range(row.storage_key, 0, envelope.HEADER_SIZE))
        layout = envelope.Layout(row.size, header.segment_size)
        first, last = layout.covering(start, end)
        begin, stop = layout.stored_span(first, last)
        stored = self._get_range(row.storage_key, begin, stop)
        plain = envelope.open_segments(
            data_key, header, stored, first=first, last=last, size=row.size, binding=_digest(row)
        )
        offset = layout.plain_span(first)[0]
        return bytes(plain[start - offset : end - offset])

    def open_stream(self, row: DocumentContent) -> Iterator[bytes]:
        """The content segment by segment (64 KiB), for large files. The hash is checked
        at the end: a consumer must treat what it received as void if the last step raises
        `ContentCorrupted` (each segment is authenticated as it comes, so only a content
        whose row and ciphertext were forged together could get that far)."""
        data_key = self._data_key(row)  # fail now, not at the first iteration
        header = envelope.Header.parse(self._get_range(row.storage_key, 0, envelope.HEADER_SIZE))
        return self._stream(row, data_key, header)

    def _stream(
        self, row: DocumentContent, data_key: bytes, header: envelope.Header
    ) -> Iterator[bytes]:
        layout = envelope.Layout(row.size, header.segment_size)
        running = hashlib.sha256()
        binding = _digest(row)
        for first in range(0, layout.count, _STREAM_SEGMENTS):
            last = min(first + _STREAM_SEGMENTS, layout.count) - 1
            begin, stop = layout.stored_span(first, last)
            stored = self._get_range(row.storage_key, begin, stop)
            plain = envelope.open_segments(
                data_key, header, stored, first=first, last=last, size=row.size, binding=binding
            )
            view = memoryview(plain)
            for index in range(first, last + 1):
                lo, hi = layout.plain_span(index)
                offset = layout.plain_span(first)[0]
                chunk = bytes(view[lo - offset : hi - offset])
                running.update(chunk)
                if chunk:
                    yield chunk
        if running.hexdigest() != row.sha256:
            raise ContentCorrupted(f"content {row.sha256} does not match its hash")

    def _data_key(self, row: DocumentContent) -> bytes:
        if row.scheme != SCHEME:
            raise ContentCorrupted(f"content {row.sha256} has an unknown scheme {row.scheme!r}")
        try:
            return self.keks.unwrap(row.kek_id, row.wrapped_key)
        except (UnknownKek, KeyUnwrapError) as exc:
            raise ContentCorrupted(f"content {row.sha256}: {exc}") from exc

    def _get(self, key: str) -> bytes:
        try:
            return self.store.get(key)
        except BlobNotFound:
            raise ContentMissing(f"no stored object {key}") from None

    def _get_range(self, key: str, start: int, end: int) -> bytes:
        try:
            return self.store.get_range(key, start, end)
        except BlobNotFound:
            raise ContentMissing(f"no stored object {key}") from None

    # -- key rotation ----------------------------------------------------------------------

    def rotate_kek(self, sessions: sessionmaker[Session], *, batch: int = 1000) -> RotationReport:
        """Make a new KEK current and rewrap every row with it. Content bytes are not
        touched. If interrupted, `rewrap` finishes the job."""
        self.keks.rotate()
        return self.rewrap(sessions, batch=batch)

    def rewrap(self, sessions: sessionmaker[Session], *, batch: int = 1000) -> RotationReport:
        """Rewrap, `batch` rows per transaction, every row not under the current KEK."""
        rewrapped, previous = 0, set()
        while True:
            current = self.keks.current_id
            with transaction(sessions) as session:
                rows = session.scalars(
                    select(DocumentContent)
                    .where(DocumentContent.kek_id != current)
                    .order_by(DocumentContent.sha256)
                    .limit(batch)
                    .with_for_update()
                ).all()
                for row in rows:
                    previous.add(row.kek_id)
                    data_key = self.keks.unwrap(row.kek_id, row.wrapped_key)
                    row.kek_id, row.wrapped_key = self.keks.wrap(data_key)
            rewrapped += len(rows)
            if len(rows) < batch:
                return RotationReport(self.keks.current_id, rewrapped, tuple(sorted(previous)))

    def retire_kek(self, sessions: sessionmaker[Session], kek_id: str) -> None:
        """Delete an old KEK's key file, once no row refers to it any more."""
        if kek_id == self.keks.current_id:
            raise ValueError("the current KEK cannot be retired")
        with transaction(sessions) as session:
            count = session.scalar(select(func.count()).where(DocumentContent.kek_id == kek_id))
        if count:
            raise KekInUse(f"KEK {kek_id} still wraps {count} data keys: rewrap first")
        self.keks.retire(kek_id)

    # -- recovery --------------------------------------------------------------------------

    @property
    def is_local(self) -> bool:
        return isinstance(self.store, LocalFileStore)

    def recover(
        self, sessions: sessionmaker[Session], *, grace_seconds: float = ORPHAN_GRACE_SECONDS
    ) -> RecoveryReport:
        """At start (and from the command line): finish or remove what interrupted deposits
        left. Local files: the packs (and an earlier version's staging areas) of dead
        processes only, so it is safe while other processes run. Other stores: every object
        no row names and older than `grace_seconds` is deleted (the whole bucket is
        listed)."""

        def stored(keys: Sequence[str]) -> set[str]:
            found: set[str] = set()
            for i in range(0, len(keys), _LOOKUP_BATCH):
                chunk = list(keys[i : i + _LOOKUP_BATCH])
                with transaction(sessions) as session:
                    found.update(
                        session.scalars(
                            select(DocumentContent.storage_key).where(
                                DocumentContent.storage_key.in_(chunk)
                            )
                        )
                    )
            return found

        def named(volume: str) -> list[str]:
            low, high = PackKey.bounds(volume)
            with transaction(sessions) as session:
                return list(
                    session.scalars(
                        select(DocumentContent.storage_key).where(
                            DocumentContent.storage_key.between(low, high)
                        )
                    )
                )

        if isinstance(self.store, LocalFileStore):
            finished, removed = self.store.recover_staging(stored)
            removed += self.store.packs.recover(named)
        else:
            finished, removed = 0, self._sweep_orphans(stored, grace_seconds)
        if finished or removed:
            log.info("content recovery: %d finished, %d removed", finished, removed)
        return RecoveryReport(finished, removed)

    def _sweep_orphans(
        self, stored: Callable[[Sequence[str]], set[str]], grace_seconds: float
    ) -> int:
        cutoff = time.time() - grace_seconds
        removed = 0
        page: list[str] = []

        def flush() -> int:
            orphans = set(page) - stored(page)
            for key in orphans:
                self.store.delete(key)
            page.clear()
            return len(orphans)

        for listed in self.store.list_keys():
            if listed.modified <= cutoff:
                page.append(listed.key)
                if len(page) >= _LOOKUP_BATCH:
                    removed += flush()
        return removed + (flush() if page else 0)

    def close(self) -> None:
        close = getattr(self.store, "close", None)
        if callable(close):
            close()


def recover_contents(
    settings: Settings, keyring: Keyring, sessions: sessionmaker[Session]
) -> RecoveryReport:
    """Recovery as a command: what `partage` runs at start, and on demand."""
    repository = Repository.from_settings(settings, keyring)
    try:
        return repository.recover(sessions)
    finally:
        repository.close()


def _digest(row: DocumentContent) -> bytes:
    try:
        return bytes.fromhex(row.sha256)
    except ValueError:
        raise ContentCorrupted(f"not a SHA-256: {row.sha256!r}") from None
