"""The demo's documents: every type, PDFs and structured CDA, versions, masked and hidden
ones, signed by the directory's physicians, the real CDA examples when present; filed once
(a second run adds nothing), no blob without its row, the audit chain whole."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import func, select

from partage.audit.models import AuditEvent
from partage.audit.service import verify_chain
from partage.db import transaction
from partage.demo import load_demo_directory, patient_file_sources, seed_demo_territory
from partage.documents.cda import parse_cda
from partage.documents.demo import DEMO_SOURCE_ID, fixtures_directory, load_demo_documents
from partage.documents.models import DocumentContent, DocumentEntry, SubmissionSet
from partage.documents.synthetic import DOCUMENT_TYPES
from partage.platform import Platform
from partage.security.principal import operator_principal
from tests.documents.stored import contents_held

PROFESSIONALS = 400
PATIENTS = 200


@pytest.fixture
def demo(fresh_platform: Platform) -> Platform:
    with transaction(fresh_platform.sessions) as session:
        seed_demo_territory(session, fresh_platform, actor=operator_principal())
    announced: list[str] = []
    load_demo_directory(
        fresh_platform,
        actor=operator_principal(),
        professionals=PROFESSIONALS,
        establishments=60,
        patients=PATIENTS,
        announce=announced.append,
    )
    assert any("\nDocuments: filed" in line for line in announced), announced
    return fresh_platform


def test_the_demo_files_documents_of_every_kind_once(demo: Platform) -> None:
    platform = demo
    with platform.read_sessions() as session:
        entries = session.scalars(
            select(DocumentEntry)
            .join(SubmissionSet, SubmissionSet.id == DocumentEntry.submission_set_id)
            .where(SubmissionSet.source_id == DEMO_SOURCE_ID)
        ).all()
        contents = session.scalar(select(func.count()).select_from(DocumentContent))
        audited = session.scalar(
            select(func.count()).where(AuditEvent.action == "document.deposit")
        )
        assert verify_chain(session, key=platform.audit_key).ok
        cda_rows = [e for e in entries if e.mime_type == "text/xml"]
        for entry in cda_rows:
            row = session.get(DocumentContent, entry.sha256)
            assert row is not None
            parse_cda(platform.repository.read(row))
    types = Counter(e.type_code for e in entries)
    assert {code for code, *_ in DOCUMENT_TYPES} <= set(types)
    assert len(entries) > PATIENTS  # more than one document per patient on average
    assert audited == len(entries)
    assert contents == contents_held(platform)
    assert any(e.status == "superseded" for e in entries)
    assert any(e.version == 2 for e in entries)
    assert any(e.masked_ps for e in entries)
    assert any(e.invisible_patient for e in entries)
    assert sum(1 for e in entries if e.author_practitioner_id is not None) > len(entries) / 2
    generated = [e for e in cda_rows if e.type_code in ("11502-2", "18748-4")]
    assert generated, "structured laboratory and imaging reports"
    if fixtures_directory().is_dir():
        examples = len(list(fixtures_directory().glob("*.xml")))
        from_examples = [e for e in cda_rows if e.format_code and "asip" in e.format_code]
        assert examples and from_examples
        # Each example filed, besides the generated ones (its own type, from its header).
        assert len(cda_rows) >= examples + 1
        assert {e.type_code for e in from_examples} - {code for code, *_ in DOCUMENT_TYPES}

    again = load_demo_documents(
        platform, actor=operator_principal(), sources=patient_file_sources()
    )
    assert again.created == 0
    assert again.total == len(entries)
    assert "already filed" in again.summary()


def test_the_examples_directory_is_optional(
    fresh_platform: Platform, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PARTAGE_CDA_FIXTURES", str(tmp_path / "none"))
    assert fixtures_directory() == tmp_path / "none"
    with transaction(fresh_platform.sessions) as session:
        seed_demo_territory(session, fresh_platform, actor=operator_principal())
    result = load_demo_documents(
        fresh_platform, actor=operator_principal(), sources=patient_file_sources()
    )
    assert (result.created, result.total) == (0, 0)  # no patients yet: nothing to file
