"""The document repository: contents stored once, encrypted, verified, crash-safe; against
real files, a real database (SQLite or PostgreSQL) and a real S3-compatible server."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from moto.server import ThreadedMotoServer
from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from partage.db import transaction
from partage.documents import envelope
from partage.documents.keys import KeyEncryptionKeys, UnknownKek
from partage.documents.models import DocumentContent
from partage.documents.packs import PackKey
from partage.documents.repository import (
    SCHEME,
    ContentCorrupted,
    ContentMissing,
    KekInUse,
    PreparedContent,
    Repository,
    StagedContent,
)
from partage.documents.stores import (
    BlobNotFound,
    Credentials,
    LocalFileStore,
    S3Store,
    sigv4_authorization,
)
from partage.platform import Platform
from partage.security.keyring import Keyring
from tests.conftest import build_platform, free_port
from tests.documents.stored import overwrite, pack_files, stored_bytes, unreleased_bytes

SEGMENT = envelope.SEGMENT_SIZE
SIZES = [0, 1, 1000, SEGMENT - 1, SEGMENT, SEGMENT + 1, 3 * SEGMENT + 17]


@dataclass
class World:
    platform: Platform
    keks: KeyEncryptionKeys
    root: Path

    def repository(self, name: str) -> Repository:
        """A repository over its own local files, sharing the module's KEKs and database."""
        return Repository(
            LocalFileStore(self.root / name / "blobs"),
            self.keks,
            sessions=self.platform.read_sessions,
        )


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("repository")
    platform, database = build_platform(root, free_port())
    keks = KeyEncryptionKeys.from_settings(platform.settings, platform.keyring)
    yield World(platform, keks, root)
    platform.close()
    database.drop()


def deposit(repository: Repository, world: World, content: bytes) -> DocumentContent:
    """The deposit protocol, as the deposit action runs it."""
    staged = repository.stage(repository.prepare(content))
    try:
        with transaction(world.platform.sessions) as session:
            insert_row(session, staged.prepared)
    except BaseException:
        repository.abandoned(staged)
        raise
    repository.committed(staged)
    return stored_row(world, staged.prepared.sha256)


def insert_row(session: Session, prepared: PreparedContent) -> None:
    """As the deposit action inserts it: a content already there is left as it is."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    row = prepared.row()
    values = {c.key: getattr(row, c.key) for c in DocumentContent.__table__.columns}
    values = {k: v for k, v in values.items() if v is not None}
    session.execute(insert(DocumentContent).values(**values).on_conflict_do_nothing())


def stored_row(world: World, sha256: str) -> DocumentContent:
    with transaction(world.platform.sessions) as session:
        row = session.get(DocumentContent, sha256)
        assert row is not None
        return row


def store_root(repository: Repository) -> Path:
    store = repository.store
    assert isinstance(store, LocalFileStore)
    return store.root


def left_behind(repository: Repository, *rows: DocumentContent) -> int:
    """Bytes the store still holds that none of `rows` names."""
    return unreleased_bytes(store_root(repository), [r.storage_key for r in rows])


def forged_row(repository: Repository, row: DocumentContent, stored: bytes) -> DocumentContent:
    """`row`, pointing at `stored` (written into the store as a content of its own)."""
    store = repository.store
    assert isinstance(store, LocalFileStore)
    return DocumentContent(**{**_columns(row), "storage_key": store.append(stored)})


# -- round trips ------------------------------------------------------------------------------


@pytest.mark.parametrize("size", SIZES)
def test_round_trip(world: World, size: int) -> None:
    repository = world.repository(f"round-{size}")
    content = os.urandom(size)
    row = deposit(repository, world, content)
    assert row.size == size
    assert row.sha256 == hashlib.sha256(content).hexdigest()
    assert row.scheme == SCHEME
    assert repository.read(row) == content
    assert b"".join(repository.open_stream(row)) == content
    assert repository.read_range(row, 0, size) == content
    assert repository.read_range(row, size // 3, size) == content[size // 3 :]
    assert repository.read_range(row, 5, 10**9) == content[5:]
    stored = stored_bytes(store_root(repository), row.storage_key)
    assert len(stored) == envelope.Layout(size, SEGMENT).stored_size


def test_stream_yields_segments(world: World) -> None:
    repository = world.repository("stream")
    content = os.urandom(40 * SEGMENT + 3)  # more than one store read of 16 segments
    row = deposit(repository, world, content)
    chunks = list(repository.open_stream(row))
    assert [len(c) for c in chunks] == [SEGMENT] * 40 + [3]
    assert b"".join(chunks) == content


def test_same_content_is_stored_once(world: World) -> None:
    repository = world.repository("dedupe")
    content = os.urandom(5000)
    first = deposit(repository, world, content)
    second = deposit(repository, world, content)
    assert first.storage_key == second.storage_key
    (pack,) = pack_files(store_root(repository))
    assert pack.stat().st_size == len(stored_bytes(store_root(repository), first.storage_key))
    # The second deposit found the row before writing anything.
    staged = repository.stage(repository.prepare(content))
    assert staged.written is False
    assert repository.read(second) == content


def test_same_content_deposited_at_once_keeps_one_object(world: World) -> None:
    # Both deposits stage before either commits: two copies, one row; the loser's goes.
    repository = world.repository("race")
    content = os.urandom(30_000)
    staged = [repository.stage(repository.prepare(content)) for _ in range(2)]
    assert all(s.written for s in staged)
    for item in staged:
        with transaction(world.platform.sessions) as session:
            insert_row(session, item.prepared)
        repository.committed(item)
    row = stored_row(world, staged[0].prepared.sha256)
    assert row.storage_key == staged[0].prepared.storage_key
    assert staged[1].prepared.storage_key != row.storage_key
    assert left_behind(repository, row) == 0
    assert repository.read(row) == content


def test_rollback_leaves_nothing(world: World) -> None:
    repository = world.repository("rollback")
    content = os.urandom(20_000)
    with pytest.raises(RuntimeError, match="refused"):
        staged = repository.stage(repository.prepare(content))
        try:
            with transaction(world.platform.sessions) as session:
                insert_row(session, staged.prepared)
                raise RuntimeError("refused")
        except BaseException:
            repository.abandoned(staged)
            raise
    assert left_behind(repository) == 0
    with transaction(world.platform.sessions) as session:
        assert session.get(DocumentContent, hashlib.sha256(content).hexdigest()) is None


def test_stored_bytes_reveal_nothing(world: World) -> None:
    repository = world.repository("opaque")
    content = b"Compte rendu operatoire: appendicectomie. " * 200
    row = deposit(repository, world, content)
    (pack,) = pack_files(store_root(repository))
    stored = pack.read_bytes()
    digest = hashlib.sha256(content).digest()
    for needle in (content[:32], b"appendicectomie", digest, digest.hex().encode()):
        assert needle not in stored
    assert row.sha256 not in row.storage_key
    assert digest.hex() not in str(pack)


# -- integrity --------------------------------------------------------------------------------


def test_one_changed_byte_is_detected(world: World) -> None:
    repository = world.repository("tamper")
    content = os.urandom(2 * SEGMENT + 100)
    row = deposit(repository, world, content)
    blobs = store_root(repository)
    original = stored_bytes(blobs, row.storage_key)
    for offset in (0, 5, envelope.HEADER_SIZE + 10, len(original) - 1):
        tampered = bytearray(original)
        tampered[offset] ^= 0x01
        overwrite(blobs, row.storage_key, bytes(tampered))
        with pytest.raises(ContentCorrupted):
            repository.read(row)
        with pytest.raises(ContentCorrupted):
            b"".join(repository.open_stream(row))
    # A range read fails exactly when it covers the changed segment.
    tampered = bytearray(original)
    tampered[envelope.HEADER_SIZE + SEGMENT + 16 + 7] ^= 0x80  # in segment 1
    overwrite(blobs, row.storage_key, bytes(tampered))
    assert repository.read_range(row, 0, 100) == content[:100]
    with pytest.raises(ContentCorrupted):
        repository.read_range(row, SEGMENT + 1, SEGMENT + 2)


def test_truncation_and_reordering_are_detected(world: World) -> None:
    repository = world.repository("truncate")
    content = os.urandom(3 * SEGMENT)
    row = deposit(repository, world, content)
    original = stored_bytes(store_root(repository), row.storage_key)
    stored_segment = SEGMENT + envelope.TAG_SIZE
    header, body = original[: envelope.HEADER_SIZE], original[envelope.HEADER_SIZE :]
    segments = [body[i : i + stored_segment] for i in range(0, len(body), stored_segment)]
    assert len(segments) == 3

    def check(stored: bytes, *, size: int = row.size) -> None:
        forged = forged_row(repository, row, stored)
        forged.size = size
        with pytest.raises(ContentCorrupted):
            repository.read(forged)
        with pytest.raises(ContentCorrupted):
            b"".join(repository.open_stream(forged))

    check(original[:-1])  # a byte short
    check(header + segments[0] + segments[1])  # the last segment dropped
    # ...even when the row's size is forged to match: segment 1 is not marked last.
    check(header + segments[0] + segments[1], size=2 * SEGMENT)
    check(header + segments[1] + segments[0] + segments[2])  # two segments swapped
    # A segment appended: a whole read refuses it; a stream, which reads only the segments
    # the row's size calls for, never sees it and delivers exactly the content.
    longer = forged_row(repository, row, original + segments[2])
    with pytest.raises(ContentCorrupted):
        repository.read(longer)
    assert b"".join(repository.open_stream(longer)) == content
    # A segment taken from another content (another data key).
    other = deposit(repository, world, os.urandom(3 * SEGMENT))
    other_body = stored_bytes(store_root(repository), other.storage_key)[envelope.HEADER_SIZE :]
    check(header + segments[0] + other_body[stored_segment : 2 * stored_segment] + segments[2])
    assert repository.read(row) == content


def test_contents_cannot_be_swapped_between_rows(world: World) -> None:
    # Someone able to write the table points row A at B's object and key: the segments
    # are bound to the hash they were filed under, so even a range read refuses them.
    repository = world.repository("swap")
    a = deposit(repository, world, os.urandom(1000))
    b = deposit(repository, world, os.urandom(1000))
    forged = DocumentContent(
        **{**_columns(a), "storage_key": b.storage_key, "wrapped_key": b.wrapped_key}
    )
    forged.kek_id = b.kek_id
    with pytest.raises(ContentCorrupted):
        repository.read_range(forged, 0, 10)


def test_missing_object(world: World) -> None:
    repository = world.repository("missing")
    row = deposit(repository, world, b"x" * 10)
    (pack,) = pack_files(store_root(repository))
    pack.unlink()
    with pytest.raises(ContentMissing):
        repository.read(row)
    with pytest.raises(ContentMissing):
        repository.read_range(row, 0, 1)


def test_wrong_kek_fails(world: World, tmp_path: Path) -> None:
    repository = world.repository("wrong-kek")
    content = os.urandom(100)
    row = deposit(repository, world, content)
    # Another installation's KEKs (another master key): the key file is unknown or sealed
    # by another keyring.
    strangers = KeyEncryptionKeys(tmp_path / "kek", Keyring(os.urandom(32)))
    stranger = Repository(repository.store, strangers)
    with pytest.raises(ContentCorrupted):
        stranger.read(row)
    copied = KeyEncryptionKeys(world.keks._dir, Keyring(os.urandom(32)))
    with pytest.raises(ContentCorrupted):
        Repository(repository.store, copied).read(row)
    # A wrapped key changed, or presented as another KEK's.
    other_kek = world.keks.rotate()
    try:
        wrapped = bytearray(row.wrapped_key)
        wrapped[-1] ^= 1
        for forged in (
            DocumentContent(**{**_columns(row), "wrapped_key": bytes(wrapped)}),
            DocumentContent(**{**_columns(row), "kek_id": other_kek}),
            DocumentContent(**{**_columns(row), "kek_id": "0" * 16}),
        ):
            with pytest.raises(ContentCorrupted):
                repository.read(forged)
    finally:
        repository.rewrap(world.platform.sessions)
    assert repository.read(stored_row(world, row.sha256)) == content


# -- range reads ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ranged(world: World) -> tuple[Repository, DocumentContent, bytes]:
    repository = world.repository("ranges")
    content = os.urandom(4 * SEGMENT + 1234)
    return repository, deposit(repository, world, content), content


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    start=st.integers(0, 4 * SEGMENT + 1300),
    length=st.one_of(st.integers(0, 40), st.integers(0, 3 * SEGMENT)),
)
def test_range_reads_equal_the_slice(
    ranged: tuple[Repository, DocumentContent, bytes], start: int, length: int
) -> None:
    repository, row, content = ranged
    assert repository.read_range(row, start, start + length) == content[start : start + length]


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (SEGMENT - 1, SEGMENT + 1),  # across one boundary
        (SEGMENT, 2 * SEGMENT),  # exactly one segment
        (SEGMENT - 3, 3 * SEGMENT + 3),  # across several
        (4 * SEGMENT, 4 * SEGMENT + 1234),  # the short last segment
        (0, 0),
    ],
)
def test_range_reads_at_boundaries(
    ranged: tuple[Repository, DocumentContent, bytes], start: int, end: int
) -> None:
    repository, row, content = ranged
    assert repository.read_range(row, start, end) == content[start:end]


def test_range_reads_only_the_segments_needed(
    ranged: tuple[Repository, DocumentContent, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    repository, row, content = ranged
    store = repository.store
    assert isinstance(store, LocalFileStore)
    asked: list[tuple[int, int]] = []
    get_range = store.get_range

    def spy(key: str, start: int, end: int) -> bytes:
        asked.append((start, end))
        return get_range(key, start, end)

    monkeypatch.setattr(store, "get_range", spy)
    monkeypatch.setattr(store, "get", lambda key: pytest.fail("read the whole object"))
    assert (
        repository.read_range(row, 2 * SEGMENT + 5, 2 * SEGMENT + 9)
        == content[2 * SEGMENT + 5 : 2 * SEGMENT + 9]
    )
    header, segment = asked
    assert header == (0, envelope.HEADER_SIZE)
    assert segment[1] - segment[0] == SEGMENT + envelope.TAG_SIZE


def test_invalid_range(ranged: tuple[Repository, DocumentContent, bytes]) -> None:
    repository, row, _ = ranged
    with pytest.raises(ValueError, match="range"):
        repository.read_range(row, -1, 3)
    with pytest.raises(ValueError, match="range"):
        repository.read_range(row, 10, 3)


@settings(max_examples=200, deadline=None)
@given(
    content=st.binary(max_size=300),
    segment=st.integers(16, 64),
    start=st.integers(0, 310),
    length=st.integers(0, 310),
)
def test_envelope_segments(content: bytes, segment: int, start: int, length: int) -> None:
    key, binding = envelope.new_data_key(), os.urandom(32)
    stored = envelope.seal(key, content, binding=binding, segment_size=segment)
    assert bytes(envelope.open_all(key, stored, size=len(content), binding=binding)) == content
    end = min(start + length, len(content))
    if start >= end:
        return
    header = envelope.Header.parse(stored[: envelope.HEADER_SIZE])
    layout = envelope.Layout(len(content), segment)
    first, last = layout.covering(start, end)
    begin, stop = layout.stored_span(first, last)
    plain = envelope.open_segments(
        key, header, stored[begin:stop], first=first, last=last, size=len(content), binding=binding
    )
    offset = layout.plain_span(first)[0]
    assert bytes(plain[start - offset : end - offset]) == content[start:end]


# -- key rotation -----------------------------------------------------------------------------


def test_kek_rotation_rewraps_rows_and_leaves_content_alone(world: World) -> None:
    repository = world.repository("rotation")
    # Not the empty content: the module's database is shared, and its row is another test's.
    contents = [os.urandom(n) for n in (3, 10, SEGMENT + 5)]
    rows = [deposit(repository, world, c) for c in contents]
    before = {p: p.read_bytes() for p in pack_files(store_root(repository))}
    old = world.keks.current_id

    report = repository.rotate_kek(world.platform.sessions, batch=2)

    assert report.kek_id == world.keks.current_id != old
    assert old in report.previous
    assert report.rewrapped >= len(rows)
    with transaction(world.platform.sessions) as session:
        assert set(session.scalars(select(DocumentContent.kek_id))) == {report.kek_id}
    assert {p: p.read_bytes() for p in pack_files(store_root(repository))} == before
    for row, content in zip(rows, contents, strict=True):
        fresh = stored_row(world, row.sha256)
        assert fresh.wrapped_key != row.wrapped_key
        assert fresh.storage_key == row.storage_key
        assert repository.read(fresh) == content
        # A row read before the rotation is still readable until the old KEK is retired.
        assert repository.read(row) == contents[rows.index(row)]

    # New content is wrapped with the new KEK.
    assert deposit(repository, world, os.urandom(50)).kek_id == report.kek_id
    # Retiring: refused for the current KEK, and for one rows still refer to.
    with pytest.raises(ValueError, match="current"):
        repository.retire_kek(world.platform.sessions, report.kek_id)
    for kek_id in report.previous:
        repository.retire_kek(world.platform.sessions, kek_id)
        assert kek_id not in world.keks.ids()
    with pytest.raises(ContentCorrupted):
        repository.read(rows[0])  # the pre-rotation row named the retired KEK
    assert repository.read(stored_row(world, rows[0].sha256)) == contents[0]


def test_retiring_a_kek_still_in_use_is_refused(world: World) -> None:
    repository = world.repository("retire")
    row = deposit(repository, world, os.urandom(30))
    world.keks.rotate()
    with pytest.raises(KekInUse):
        repository.retire_kek(world.platform.sessions, row.kek_id)
    report = repository.rewrap(world.platform.sessions)
    assert row.kek_id in report.previous
    repository.retire_kek(world.platform.sessions, row.kek_id)
    with pytest.raises(UnknownKek):
        world.keks.unwrap(row.kek_id, row.wrapped_key)


def test_another_process_rotation_is_seen(world: World) -> None:
    other = KeyEncryptionKeys(world.keks._dir, world.platform.keyring)
    assert other.current_id == world.keks.current_id
    new = other.rotate()
    assert world.keks.wrap(os.urandom(32))[0] == new
    world.repository("rotation-seen").rewrap(world.platform.sessions)


def test_kek_files_are_sealed(world: World) -> None:
    kek_dir = world.keks._dir
    files = list(kek_dir.glob("*.key"))
    assert files
    for path in files:
        assert path.stat().st_mode & 0o777 == 0o600
    assert (kek_dir / "current").read_text().strip() == world.keks.current_id


# -- crash safety -----------------------------------------------------------------------------

CHILD = textwrap.dedent(
    """
    import os, sys, time
    from partage.config import Settings
    from partage.db import make_engine, make_sessionmaker, transaction
    from partage.documents.repository import Repository
    from partage.documents.keys import KeyEncryptionKeys
    from partage.documents.stores import LocalFileStore
    from partage.documents.models import DocumentContent
    from partage.security.keyring import Keyring

    data_dir, database_url, blobs, mode = sys.argv[1:5]
    settings = Settings(data_dir=data_dir, database_url=database_url)
    keyring = Keyring.from_settings(settings)
    sessions = make_sessionmaker(make_engine(database_url))
    repository = Repository(
        LocalFileStore(__import__("pathlib").Path(blobs)),
        KeyEncryptionKeys.from_settings(settings, keyring),
        sessions=sessions,
    )
    if mode == "commit":  # a content committed before: the killed one lies after it
        earlier = repository.stage(repository.prepare(os.urandom(50_000))).prepared
        with transaction(sessions) as session:
            session.add(earlier.row())
    staged = repository.stage(repository.prepare(os.urandom(200_000))).prepared
    if mode == "commit":
        with transaction(sessions) as session:
            session.add(staged.row())
    print(staged.sha256, staged.storage_key, flush=True)
    time.sleep(60)  # killed here: after the commit, before `committed`
    """
)


def run_and_kill(world: World, blobs: Path, mode: str) -> tuple[str, str]:
    settings_ = world.platform.settings
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            CHILD,
            str(settings_.data_dir),
            settings_.resolved_database_url,
            str(blobs),
            mode,
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        assert line, "the child died before staging"
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == -signal.SIGKILL
    sha256, key = line.split()
    return sha256, key


def lock_files(repository: Repository) -> list[Path]:
    return sorted((store_root(repository) / "packs").glob("*.lock"))


def test_kill_before_commit_leaves_no_orphan(world: World) -> None:
    repository = world.repository("crash-before")
    sha256, _key = run_and_kill(world, store_root(repository), "stage")
    (pack,) = pack_files(store_root(repository))
    assert pack.stat().st_size >= 200_000  # the dead process's uncommitted content

    report = repository.recover(world.platform.sessions)

    assert (report.finished, report.removed) == (0, 1)
    assert pack_files(store_root(repository)) == []  # no row names anything in it
    assert lock_files(repository) == []
    with transaction(world.platform.sessions) as session:
        assert session.get(DocumentContent, sha256) is None


def test_kill_after_commit_keeps_what_rows_name(world: World) -> None:
    repository = world.repository("crash-after")
    sha256, key = run_and_kill(world, store_root(repository), "commit")
    row = stored_row(world, sha256)
    assert row.storage_key == key
    assert len(repository.read(row)) == 200_000

    report = repository.recover(world.platform.sessions)

    assert (report.finished, report.removed) == (0, 0)
    assert lock_files(repository) == []
    assert hashlib.sha256(repository.read(row)).hexdigest() == sha256
    with transaction(world.platform.sessions) as session:
        named = list(session.scalars(select(DocumentContent.storage_key)))
    assert unreleased_bytes(store_root(repository), named) == 0


def test_recovery_gives_back_what_no_row_names(world: World) -> None:
    # A dead process's pack: a committed content, one rolled back whose hole was never
    # punched, another committed, and a last one in flight at the crash.
    repository = world.repository("crash-gaps")
    store = repository.store
    assert isinstance(store, LocalFileStore)
    contents = [os.urandom(n) for n in (30_000, 40_000, 30_000, 50_000)]
    staged = [repository.stage(repository.prepare(c)) for c in contents]
    rows = []
    for item in (staged[0], staged[2]):
        with transaction(world.platform.sessions) as session:
            insert_row(session, item.prepared)
        rows.append(stored_row(world, item.prepared.sha256))
    store.packs.close()  # as if the process had died: its lock is dropped
    (pack,) = pack_files(store_root(repository))
    assert unreleased_bytes(store_root(repository), [r.storage_key for r in rows]) > 80_000

    report = world.repository("crash-gaps").recover(world.platform.sessions)

    assert report.removed == 2  # the gap, and the tail
    assert left_behind(repository, *rows) == 0
    last = PackKey.parse(rows[1].storage_key)
    assert last is not None
    assert pack.stat().st_size == last.end
    assert [repository.read(r) for r in rows] == [contents[0], contents[2]]


def test_recovery_leaves_live_processes_alone(world: World) -> None:
    repository = world.repository("live")
    staged = repository.stage(repository.prepare(os.urandom(20_000)))  # in flight, here
    other = world.repository("live")  # another process's view of the same files
    report = other.recover(world.platform.sessions)
    assert (report.finished, report.removed) == (0, 0)
    assert len(pack_files(store_root(repository))) == 1
    repository.abandoned(staged)
    repository.close()
    # Ended: its packs are settled by the next recovery like a dead process's.
    assert other.recover(world.platform.sessions).removed == 1
    assert pack_files(store_root(repository)) == []
    assert lock_files(repository) == []


def test_staged_but_uncommitted_is_removed_by_abandoned(world: World) -> None:
    repository = world.repository("abandon")
    staged: StagedContent = repository.stage(repository.prepare(os.urandom(20_000)))
    assert staged.written
    repository.abandoned(staged)
    assert left_behind(repository) == 0


# -- S3 ---------------------------------------------------------------------------------------

AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
AWS_HOST = "examplebucket.s3.amazonaws.com"
AWS_DATE = "20130524T000000Z"
EMPTY = hashlib.sha256(b"").hexdigest()
WELCOME = hashlib.sha256(b"Welcome to Amazon S3.").hexdigest()


@pytest.mark.parametrize(
    ("method", "path", "query", "headers", "payload", "signature"),
    [
        # The examples of AWS's S3 documentation, "Signature Calculations for the
        # Authorization Header: Transferring Payload in a Single Chunk".
        (
            "GET",
            "/test.txt",
            [],
            {"Range": "bytes=0-9", "x-amz-content-sha256": EMPTY},
            EMPTY,
            "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41",
        ),
        (
            "PUT",
            "/test%24file.text",
            [],
            {
                "Date": "Fri, 24 May 2013 00:00:00 GMT",
                "x-amz-storage-class": "REDUCED_REDUNDANCY",
                "x-amz-content-sha256": WELCOME,
            },
            WELCOME,
            "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd",
        ),
        (
            "GET",
            "/",
            [("lifecycle", "")],
            {"x-amz-content-sha256": EMPTY},
            EMPTY,
            "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543",
        ),
        (
            "GET",
            "/",
            [("prefix", "J"), ("max-keys", "2")],
            {"x-amz-content-sha256": EMPTY},
            EMPTY,
            "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7",
        ),
    ],
)
def test_sigv4_matches_aws_examples(
    method: str,
    path: str,
    query: list[tuple[str, str]],
    headers: dict[str, str],
    payload: str,
    signature: str,
) -> None:
    authorization = sigv4_authorization(
        method=method,
        path=path,
        query=query,
        headers={"Host": AWS_HOST, "x-amz-date": AWS_DATE, **headers},
        payload_sha256=payload,
        credentials=Credentials("AKIAIOSFODNN7EXAMPLE", AWS_SECRET),
        region="us-east-1",
        service="s3",
        amz_date=AWS_DATE,
    )
    assert authorization.startswith(
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
    )
    assert authorization.endswith(f", Signature={signature}")


def test_s3_requests_are_signed_as_sent() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, content=b"x")

    store = S3Store(
        endpoint="http://127.0.0.1:9000",
        bucket="partage",
        prefix="/docs/",
        credentials=Credentials("AKID", "SECRET", "TOKEN"),
        region="eu-west-3",
        transport=httpx.MockTransport(handler),
    )
    store.put("abcdef0123456789", b"payload")
    request = seen[0]
    assert request.url.path == "/partage/docs/ab/cd/abcdef0123456789"
    assert request.headers["host"] == "127.0.0.1:9000"
    assert request.headers["x-amz-content-sha256"] == hashlib.sha256(b"payload").hexdigest()
    assert request.headers["x-amz-security-token"] == "TOKEN"
    expected = sigv4_authorization(
        method="PUT",
        path=request.url.raw_path.decode(),
        query=[],
        headers={
            k: request.headers[k]
            for k in ("host", "x-amz-date", "x-amz-content-sha256", "x-amz-security-token")
        },
        payload_sha256=hashlib.sha256(b"payload").hexdigest(),
        credentials=Credentials("AKID", "SECRET"),
        region="eu-west-3",
        service="s3",
        amz_date=request.headers["x-amz-date"],
    )
    assert request.headers["authorization"] == expected
    assert "SECRET" not in repr(Credentials("AKID", "SECRET"))


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


def s3_store(endpoint: str, bucket: str) -> S3Store:
    store = S3Store.from_url(
        f"s3://{bucket}/partage/blobs?endpoint={endpoint}&region=eu-west-3",
        environ={"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"},
    )
    store.create_bucket()
    return store


def test_s3_store_round_trip(s3_endpoint: str) -> None:
    store = s3_store(s3_endpoint, "round-trip")
    keys = sorted(os.urandom(16).hex() for _ in range(7))
    for key in keys:
        store.put(key, key.encode() * 3)
    assert store.get(keys[0]) == keys[0].encode() * 3
    assert store.get_range(keys[1], 2, 9) == (keys[1].encode() * 3)[2:9]
    assert store.get_range(keys[1], 90, 200) == (keys[1].encode() * 3)[90:]
    assert store.exists(keys[2])
    listed = [k.key for k in store.list_keys(page_size=3)]  # three pages and one
    assert listed == keys
    assert [k.key for k in store.list_keys(keys[3][:5])] == [keys[3]]
    store.delete(keys[2])
    store.delete(keys[2])  # idempotent
    assert not store.exists(keys[2])
    with pytest.raises(BlobNotFound):
        store.get(keys[2])
    with pytest.raises(BlobNotFound):
        store.get_range(keys[2], 0, 1)
    store.close()


def test_repository_over_s3(world: World, s3_endpoint: str) -> None:
    store = s3_store(s3_endpoint, "repository")
    repository = Repository(store, world.keks, sessions=world.platform.read_sessions)
    contents = [os.urandom(n) for n in (5, 777, 2 * SEGMENT + 3)]
    rows = [deposit(repository, world, c) for c in contents]
    for row, content in zip(rows, contents, strict=True):
        assert repository.read(row) == content
        assert repository.read_range(row, 1, SEGMENT + 2) == content[1 : SEGMENT + 2]
        assert b"".join(repository.open_stream(row)) == content
    # Deduplicated, and a rolled back deposit's object removed.
    deposit(repository, world, contents[1])
    rolled_back = repository.stage(repository.prepare(os.urandom(64)))
    assert store.exists(rolled_back.prepared.storage_key)
    repository.abandoned(rolled_back)
    assert not store.exists(rolled_back.prepared.storage_key)
    assert sorted(k.key for k in store.list_keys()) == sorted(r.storage_key for r in rows)

    # A crash between staging and commit leaves an object no row names: recovery removes
    # it once older than the grace period, and only then.
    orphan = repository.prepare(os.urandom(64))
    store.put(orphan.storage_key, orphan.encrypted)
    assert repository.recover(world.platform.sessions).removed == 0
    report = repository.recover(world.platform.sessions, grace_seconds=-60)
    assert (report.finished, report.removed) == (0, 1)
    assert not store.exists(orphan.storage_key)
    for row, content in zip(rows, contents, strict=True):
        assert repository.read(row) == content
    repository.close()


def _columns(row: DocumentContent) -> dict[str, object]:
    return {
        "sha256": row.sha256,
        "size": row.size,
        "storage_key": row.storage_key,
        "scheme": row.scheme,
        "kek_id": row.kek_id,
        "wrapped_key": row.wrapped_key,
    }
