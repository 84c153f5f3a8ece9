"""The bulk loader: many documents filed through the deposit's rules, a batch at a time, all
or nothing per batch, contents encrypted and stored once, no blob left without its row, one
chained audit row per document. On SQLite, or PostgreSQL with PARTAGE_TEST_DATABASE_URL."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text

from partage.audit.models import AuditEvent
from partage.audit.service import verify_chain
from partage.documents import bulk
from partage.documents.bulk import BulkDocument, BulkReport, deposit_many
from partage.documents.models import DocumentContent, DocumentEntry, DocumentRelation, RelationKind
from partage.documents.submission import (
    LOINC,
    MASQUE_PS,
    AuthorRef,
    Coding,
    NewDocument,
    Relation,
    SubmissionError,
)
from partage.documents.synthetic import pdf
from partage.identity.service import MODEL_CACHE
from partage.platform import Platform
from partage.security.models import Establishment
from partage.security.principal import Principal, operator_principal
from tests.conftest import build_platform, create_hospital, directory_practitioner, free_port
from tests.documents import cda_samples
from tests.documents.stored import contents_held, stored_bytes
from tests.identity.factories import receive, traits, unique_family

OPERATOR = operator_principal("bulk test")
REPORT = Coding(LOINC, "11488-4", "Compte rendu de consultation")


@dataclass
class World:
    platform: Platform
    establishment: Establishment
    patients: list[uuid.UUID]  # local identity ids
    practitioner_id: uuid.UUID
    rpps: str


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    platform, database = build_platform(tmp_path, free_port())
    MODEL_CACHE.invalidate()
    establishment = create_hospital(platform, "CH-BULK", "1.2.250.1.999.88.1")
    rpps = "8" + str(uuid.uuid4().int)[:11]
    practitioner_id = directory_practitioner(platform, rpps)
    patients = [
        receive(platform, establishment, f"IPP-{i}", traits(unique_family())).identity.id
        for i in range(3)
    ]
    yield World(platform, establishment, patients, practitioner_id, rpps)
    platform.close()
    database.drop()
    MODEL_CACHE.invalidate()


def document(
    world: World, n: int, *, content: bytes | None = None, **overrides: Any
) -> NewDocument:
    fields: dict[str, Any] = {
        "unique_id": f"urn:oid:2.25.{uuid.uuid4().int}",
        "content": content if content is not None else pdf([f"Compte rendu {n}"], seed=str(n)),
        "mime_type": "application/pdf",
        "type": REPORT,
        "title": f"Compte rendu {n}",
        "creation_time": datetime(2025, 1, 1 + n % 28, 9, tzinfo=UTC),
        "authors": [AuthorRef(practitioner_id=world.practitioner_id)],
    }
    fields.update(overrides)
    return NewDocument(**fields)


def load(world: World, items: list[BulkDocument], **kwargs: Any) -> BulkReport:
    kwargs.setdefault("principal", OPERATOR)
    return deposit_many(
        world.platform.sessions,
        world.platform.repository,
        items,
        read_sessions=world.platform.read_sessions,
        **kwargs,
    )


def counts(world: World) -> tuple[int, int, int]:
    with world.platform.read_sessions() as session:
        entries = session.scalar(select(func.count()).select_from(DocumentEntry)) or 0
        contents = session.scalar(select(func.count()).select_from(DocumentContent)) or 0
        audited = (
            session.scalar(select(func.count()).where(AuditEvent.action == "document.deposit")) or 0
        )
    return entries, contents, audited


def test_documents_are_filed_in_batches_encrypted_and_audited(world: World) -> None:
    items = [BulkDocument(world.patients[i % 3], document(world, i)) for i in range(25)]
    seen: list[int] = []
    report = load(world, items, batch_size=10, progress=lambda r: seen.append(r.deposited))
    assert (report.deposited, report.batches, report.contents_written) == (25, 3, 25)
    assert seen == [10, 20, 25]
    assert counts(world) == (25, 25, 25)
    # One stored object per content, none left staged, and each reads back as deposited.
    assert contents_held(world.platform) == 25
    with world.platform.read_sessions() as session:
        entry = session.scalars(
            select(DocumentEntry).where(DocumentEntry.unique_id == items[7].document.unique_id)
        ).one()
        assert entry.author_label == "Claire MARTIN"
        assert entry.establishment_id == world.establishment.id
        row = session.get(DocumentContent, entry.sha256)
        assert row is not None
        assert world.platform.repository.read(row) == items[7].document.content
        # Stored encrypted: the plain bytes are nowhere in the object (wherever the store
        # files it).
        stored = stored_bytes(world.platform.settings.data_dir / "blobs", row.storage_key)
        assert items[7].document.content not in stored
        chain = verify_chain(session, key=world.platform.audit_key)
        assert chain.ok, chain.reason
        persons = set(
            session.scalars(
                select(AuditEvent.person_id).where(AuditEvent.action == "document.deposit")
            )
        )
    assert len(persons) == 3


def test_identical_contents_are_stored_once(world: World) -> None:
    form = pdf(["Formulaire de consentement éclairé"], size=4000, seed="form")
    items = [
        BulkDocument(world.patients[i % 3], document(world, i, content=form)) for i in range(12)
    ]
    report = load(world, items[:5], batch_size=4)
    report_again = load(world, items[5:], batch_size=4)
    assert report.contents_written == 1 and report.contents_shared == 4
    assert report_again.contents_written == 0 and report_again.contents_shared == 7
    assert counts(world) == (12, 1, 12)
    assert contents_held(world.platform) == 1


def test_a_refused_document_refuses_its_batch_only(world: World) -> None:
    items = [BulkDocument(world.patients[0], document(world, i)) for i in range(10)]
    items[6] = BulkDocument(
        world.patients[0],
        document(world, 6, authors=[AuthorRef(practitioner_national_id="899999999999")]),
    )
    with pytest.raises(SubmissionError, match="unknown author"):
        load(world, items, batch_size=5)
    # The first batch is committed; nothing of the second, and no blob of it.
    assert counts(world) == (5, 5, 5)
    assert contents_held(world.platform) == 5
    with world.platform.read_sessions() as session:
        chain = verify_chain(session, key=world.platform.audit_key)
    assert chain.ok


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"content": b""}, "empty"),
        ({"type": None}, "type"),
        ({"declared_size": 3}, "declared size"),
        ({"authors": []}, "no author"),
    ],
)
def test_the_deposit_checks_apply(world: World, change: dict[str, Any], message: str) -> None:
    items = [BulkDocument(world.patients[0], document(world, 1, **change))]
    with pytest.raises(SubmissionError, match=message):
        load(world, items)
    assert counts(world) == (0, 0, 0)
    assert contents_held(world.platform) == 0


def test_unknown_or_foreign_identities_are_refused(world: World) -> None:
    with pytest.raises(SubmissionError, match="no active local identity"):
        load(world, [BulkDocument(uuid.uuid4(), document(world, 1))])
    other = Principal(kind="client", label="DPI", establishment_id=uuid.uuid4())
    with pytest.raises(SubmissionError, match="identification domain"):
        load(world, [BulkDocument(world.patients[0], document(world, 1))], principal=other)
    assert counts(world) == (0, 0, 0)
    assert contents_held(world.platform) == 0


def test_versions_replace_within_and_across_batches(world: World) -> None:
    first = document(world, 1)
    second = document(
        world, 2, relations=[Relation(RelationKind.replaces, target_unique_id=first.unique_id)]
    )
    third = document(
        world,
        3,
        relations=[Relation(RelationKind.replaces, target_unique_id=second.unique_id)],
    )
    patient = world.patients[1]
    report = load(world, [BulkDocument(patient, first), BulkDocument(patient, second)])
    report_again = load(world, [BulkDocument(patient, third)])
    assert report.replaced == 1 and report_again.replaced == 1
    with world.platform.read_sessions() as session:
        rows = {
            row.unique_id: row
            for row in session.scalars(select(DocumentEntry).order_by(DocumentEntry.version))
        }
        relations = session.scalar(select(func.count()).select_from(DocumentRelation))
    assert [rows[d.unique_id].version for d in (first, second, third)] == [1, 2, 3]
    assert [rows[d.unique_id].status for d in (first, second, third)] == [
        "superseded",
        "superseded",
        "current",
    ]
    assert len({row.lineage_id for row in rows.values()}) == 1
    assert relations == 2
    # A superseded version cannot be replaced again, nor a document of another patient.
    stale = document(
        world, 4, relations=[Relation(RelationKind.replaces, target_unique_id=first.unique_id)]
    )
    with pytest.raises(SubmissionError, match="not current"):
        load(world, [BulkDocument(patient, stale)])
    foreign = document(
        world, 5, relations=[Relation(RelationKind.replaces, target_unique_id=third.unique_id)]
    )
    with pytest.raises(SubmissionError, match="not in this patient's record"):
        load(world, [BulkDocument(world.patients[2], foreign)])


def test_a_second_run_skips_what_is_stored(world: World) -> None:
    items = [BulkDocument(world.patients[i % 3], document(world, i)) for i in range(8)]
    load(world, items[:5], batch_size=3)
    report = load(world, items, batch_size=3, skip_existing=True)
    assert (report.deposited, report.skipped) == (3, 5)
    assert counts(world) == (8, 8, 8)
    with pytest.raises(SubmissionError, match="already stored"):
        load(world, items[:1])
    assert contents_held(world.platform) == 8


def test_a_content_stored_meanwhile_leaves_no_orphan(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    shared = pdf(["Résultats"], size=3000, seed="race")
    load(world, [BulkDocument(world.patients[0], document(world, 1, content=shared))])
    # As if another deposit committed the same content after the batch's first look.
    looked = bulk._existing

    def blind(session: Any, column: Any, values: Any) -> set[Any]:
        return set() if column is bulk._CONTENTS.c.sha256 else looked(session, column, values)

    monkeypatch.setattr(bulk, "_existing", blind)
    report = load(world, [BulkDocument(world.patients[1], document(world, 2, content=shared))])
    assert (report.deposited, report.contents_written, report.contents_shared) == (1, 0, 1)
    assert counts(world) == (2, 1, 2)
    assert contents_held(world.platform) == 1


def test_cda_documents_are_completed_from_their_header(world: World) -> None:
    content = cda_samples.structured("<paragraph>Patiente vue en consultation.</paragraph>")
    cda = NewDocument(
        unique_id=f"urn:oid:2.25.{uuid.uuid4().int}",
        content=content,
        mime_type="text/xml",
        visibility=frozenset({MASQUE_PS}),
    )
    load(world, [BulkDocument(world.patients[2], cda)])
    with world.platform.read_sessions() as session:
        entry = session.scalars(select(DocumentEntry)).one()
    assert (entry.type_system, entry.type_code) == (LOINC, "11490-0")
    assert entry.title == "Lettre de liaison de sortie"
    assert entry.author_label == "Claire DUBOIS (CHU de Poitiers)"
    assert entry.masked_ps
    assert entry.creation_time.replace(tzinfo=None) == datetime(2024, 3, 12, 13, 30)


def test_a_growing_load_refreshes_the_planners_statistics(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A load starting on empty tables would keep plans made for empty tables: the
    statistics are refreshed as the documents filed reach a count, then double it."""
    monkeypatch.setattr(bulk, "_FIRST_STATISTICS", 5)
    refreshed: list[int] = []
    refresh = bulk.refresh_statistics

    def counted(sessions: Any) -> None:
        refreshed.append(counts(world)[0])
        refresh(sessions)

    monkeypatch.setattr(bulk, "refresh_statistics", counted)
    start = counts(world)[0]
    items = [BulkDocument(world.patients[i % 3], document(world, 900 + i)) for i in range(25)]
    load(world, items, batch_size=10)
    assert [n - start for n in refreshed] == [10, 20]  # at 10 (≥ 5), then at 20 (≥ 2 × 10)
    with world.platform.read_sessions() as session:
        if session.get_bind().dialect.name == "postgresql":
            analyzed = session.scalar(
                text(
                    "SELECT last_analyze IS NOT NULL FROM pg_stat_user_tables "
                    "WHERE relname = 'documents_entries' AND schemaname = current_schema()"
                )
            )
        else:
            analyzed = session.scalar(
                text("SELECT count(*) > 0 FROM sqlite_stat1 WHERE tbl = 'documents_entries'")
            )
    assert analyzed
