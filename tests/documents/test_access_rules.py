"""The record rules: what `decide_record` grants, and the query condition the document store
builds from a grant (`grant_condition`) admitting exactly what `RecordGrant.admits` does."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime

from sqlalchemy import create_engine, insert, select
from sqlalchemy.orm import Session

from partage.access.decision import (
    Basis,
    Caller,
    Decision,
    DocumentFacts,
    RecordGrant,
    RecordSubject,
    decide_record,
)
from partage.documents.models import DocumentEntry, DocumentStatus
from partage.documents.service import facts, grant_condition
from partage.security.models import Profile
from partage.security.principal import Principal

E1, E2 = uuid.uuid4(), uuid.uuid4()
P1, P2 = uuid.uuid4(), uuid.uuid4()
A1 = uuid.uuid4()
PERSON, OTHER = uuid.uuid4(), uuid.uuid4()
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _entries() -> list[dict[str, object]]:
    rows = []
    for establishment, practitioner, account, hidden, masked, status in itertools.product(
        (E1, E2),
        (P1, P2, None),
        (A1, None),
        (False, True),
        (False, True),
        (DocumentStatus.current, DocumentStatus.entered_in_error, DocumentStatus.archived),
    ):
        entry_id = uuid.uuid4()
        rows.append({
            "id": entry_id, "unique_id": str(entry_id), "lineage_id": entry_id, "version": 1,
            "status": status.value, "local_identity_id": uuid.uuid4(),
            "establishment_id": establishment, "submission_set_id": uuid.uuid4(),
            "type_system": "http://loinc.org", "type_code": "11488-4", "mime_type": "text/plain",
            "size": 1, "sha256": "0" * 64, "creation_time": NOW,
            "author_practitioner_id": practitioner, "author_account_id": account,
            "confidentiality": "N", "invisible_patient": hidden, "masked_ps": masked,
            "invisible_legal_reps": False, "deposited_at": NOW, "updated_at": NOW,
        })  # fmt: skip
    return rows


def test_the_query_condition_admits_what_the_grant_admits() -> None:
    engine = create_engine("sqlite://")
    DocumentEntry.__table__.create(engine)  # type: ignore[attr-defined]
    with Session(engine) as session:
        session.execute(insert(DocumentEntry), _entries())
        rows = session.scalars(select(DocumentEntry)).all()
        allowed = Decision(True, Basis.care_establishment, "test")
        denied = Decision(False, None, "test")
        checked = 0
        for decision, care, patient, practitioner, account, establishment in itertools.product(
            (allowed, denied), (False, True), (False, True), (None, P1), (None, A1), (None, E1)
        ):
            grant = RecordGrant(
                decision,
                care_team=care,
                patient=patient,
                author_practitioner_id=practitioner,
                author_account_id=account,
                depositing_establishment_id=establishment,
            )
            by_query = set(session.scalars(select(DocumentEntry.id).where(grant_condition(grant))))
            by_rule = {row.id for row in rows if grant.admits(facts(row))}
            assert by_query == by_rule, grant
            checked += 1
        assert checked == 64


def _subject(*establishments: uuid.UUID) -> RecordSubject:
    return RecordSubject(person_id=PERSON, establishment_ids=frozenset(establishments))


def _facts(**changes: object) -> DocumentFacts:
    values: dict[str, object] = {
        "establishment_id": E2, "author_practitioner_id": None, "author_account_id": None,
        "invisible_patient": False, "masked_ps": False, "entered_in_error": False,
    }  # fmt: skip
    values.update(changes)
    return DocumentFacts(**values)  # type: ignore[arg-type]


def test_professionals_of_a_care_establishment_see_all_but_masked() -> None:
    doctor = Principal(kind="account", label="dr", account_id=A1,
                       profile=Profile.hospital_physician, establishment_id=E1)  # fmt: skip
    grant = decide_record(Caller(doctor, practitioner_id=P1), _subject(E1))
    assert grant.decision.allowed and grant.decision.basis is Basis.care_establishment
    assert grant.admits(_facts())
    assert grant.admits(_facts(invisible_patient=True))
    assert not grant.admits(_facts(masked_ps=True))
    assert grant.admits(_facts(masked_ps=True, author_practitioner_id=P1))
    assert not grant.admits(_facts(entered_in_error=True))


def test_elsewhere_a_professional_sees_only_what_they_wrote() -> None:
    city = Principal(kind="account", label="gp", account_id=A1,
                     profile=Profile.city_physician, establishment_id=E2)  # fmt: skip
    grant = decide_record(Caller(city, practitioner_id=P1), _subject(E1))
    assert grant.decision.basis is Basis.author
    assert not grant.admits(_facts())
    assert grant.admits(_facts(author_practitioner_id=P1))
    assert grant.admits(_facts(author_account_id=A1, masked_ps=True))


def test_the_patient_sees_their_record_but_what_is_hidden_from_them() -> None:
    patient = Principal(kind="account", label="p", account_id=A1, profile=Profile.patient)
    grant = decide_record(Caller(patient, own_person_id=PERSON), _subject(E1))
    assert grant.decision.basis is Basis.patient
    assert grant.admits(_facts(masked_ps=True))
    assert not grant.admits(_facts(invisible_patient=True))
    other = decide_record(Caller(patient, own_person_id=OTHER), _subject(E1))
    assert not other.decision.allowed and not other.admits(_facts())
    unlinked = decide_record(Caller(patient), _subject(E1))
    assert not unlinked.decision.allowed


def test_nobody_else() -> None:
    for profile in (
        Profile.identity_vigilance,
        Profile.territory_admin,
        Profile.establishment_admin,
    ):
        principal = Principal(kind="account", label="x", account_id=A1, profile=profile,
                              establishment_id=E1)  # fmt: skip
        assert not decide_record(Caller(principal), _subject(E1)).decision.allowed
    stray = Principal(kind="client", label="app", client_id="app")
    assert not decide_record(Caller(stray), _subject(E1)).decision.allowed
    operator = Principal(kind="operator", label="cli")
    assert not decide_record(Caller(operator), _subject(E1)).decision.allowed
