"""Reads of the document registry: whose record a document is in, who is asking, what the
access decision's grant admits as a query condition, and the entries themselves.

Nothing here decides access: `record_access` asks `access.decision.decide_record` with what
it needs; and nothing commits.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import ColumnElement, and_, false, or_, select
from sqlalchemy.orm import Session

from partage.access.decision import (
    Caller,
    DocumentFacts,
    RecordGrant,
    RecordSubject,
    decide_record,
)
from partage.documents.models import DocumentContent, DocumentEntry, DocumentStatus
from partage.identity.fhir_pix import identity_survivor, survivor_person
from partage.identity.models import LocalIdentity, Person
from partage.security.models import Account, Profile
from partage.security.principal import Principal
from partage.security.service import practitioner_of


def caller_of(session: Session, principal: Principal) -> Caller:
    """The principal with what the record rules need: a professional's practitioner in the
    directory (authorship), a patient's own person (merges followed)."""
    if principal.kind != "account" or principal.account_id is None:
        return Caller(principal)
    account = session.get(Account, principal.account_id)
    if account is None:
        return Caller(principal)
    practitioner = practitioner_of(session, account=account)
    practitioner_id = practitioner.id if practitioner is not None else None
    own_person_id = None
    if principal.profile == Profile.patient and account.person_id is not None:
        person = survivor_person(session, session.get(Person, account.person_id))
        own_person_id = person.id if person is not None else None
    return Caller(principal, practitioner_id=practitioner_id, own_person_id=own_person_id)


def subject_of(session: Session, person_id: uuid.UUID) -> RecordSubject | None:
    """The person whose record it is, as the decision sees them; None when unknown (a merged
    person answers as the person it was merged into)."""
    person = survivor_person(session, session.get(Person, person_id))
    if person is None:
        return None
    establishments = session.scalars(
        select(LocalIdentity.establishment_id)
        .where(LocalIdentity.person_id == person.id, LocalIdentity.active)
        .distinct()
    )
    return RecordSubject(person_id=person.id, establishment_ids=frozenset(establishments))


def record_access(
    session: Session, principal: Principal, person_id: uuid.UUID | None
) -> tuple[RecordSubject, RecordGrant] | None:
    """A person's record as the decision sees it, and what it grants the caller on it; None
    when there is no such person."""
    subject = subject_of(session, person_id) if person_id is not None else None
    if subject is None:
        return None
    return subject, decide_record(caller_of(session, principal), subject)


def entry_access(
    session: Session, principal: Principal, entry: DocumentEntry
) -> tuple[RecordSubject, RecordGrant] | None:
    """The record an entry is filed in (its identity's person now), as `record_access`."""
    return record_access(session, principal, person_of_identity(session, entry.local_identity_id))


def person_of_identity(session: Session, identity_id: uuid.UUID) -> uuid.UUID | None:
    identity = session.get(LocalIdentity, identity_id)
    if identity is None:
        return None
    return identity_survivor(session, identity).person_id


def facts(entry: DocumentEntry) -> DocumentFacts:
    return DocumentFacts(
        establishment_id=entry.establishment_id,
        author_practitioner_id=entry.author_practitioner_id,
        author_account_id=entry.author_account_id,
        invisible_patient=entry.invisible_patient,
        masked_ps=entry.masked_ps,
        entered_in_error=entry.status == DocumentStatus.entered_in_error,
    )


def grant_condition(grant: RecordGrant) -> ColumnElement[bool]:
    """`grant.admits` as a condition on document entries: the two must agree (tested)."""
    if not grant.decision.allowed:
        return false()
    authored: list[ColumnElement[bool]] = []
    if grant.author_practitioner_id is not None:
        authored.append(DocumentEntry.author_practitioner_id == grant.author_practitioner_id)
    if grant.author_account_id is not None:
        authored.append(DocumentEntry.author_account_id == grant.author_account_id)
    if grant.depositing_establishment_id is not None:
        authored.append(DocumentEntry.establishment_id == grant.depositing_establishment_id)
    shown: list[ColumnElement[bool]] = []
    if grant.care_team:
        shown.append(DocumentEntry.masked_ps == false())
    if grant.patient:
        shown.append(DocumentEntry.invisible_patient == false())
    alternatives = list(authored)
    if shown:
        alternatives.append(
            and_(DocumentEntry.status != DocumentStatus.entered_in_error.value, or_(*shown))
        )
    return or_(*alternatives) if alternatives else false()


def in_record_of(person_id: uuid.UUID) -> ColumnElement[bool]:
    """Entries filed under any identity of the person, active or not: an identity an
    establishment merged away (A40) keeps its documents in the record."""
    identities = select(LocalIdentity.id).where(LocalIdentity.person_id == person_id)
    return DocumentEntry.local_identity_id.in_(identities.scalar_subquery())


def get_entry(session: Session, entry_id: uuid.UUID) -> DocumentEntry | None:
    return session.get(DocumentEntry, entry_id)


def entry_by_unique_id(session: Session, unique_id: str) -> DocumentEntry | None:
    return session.scalars(
        select(DocumentEntry).where(DocumentEntry.unique_id == unique_id)
    ).one_or_none()


def versions(session: Session, lineage_id: uuid.UUID) -> Sequence[DocumentEntry]:
    """Every version of a document, the first first."""
    return session.scalars(
        select(DocumentEntry)
        .where(DocumentEntry.lineage_id == lineage_id)
        .order_by(DocumentEntry.version)
    ).all()


def content_of(session: Session, entry: DocumentEntry) -> DocumentContent | None:
    return session.get(DocumentContent, entry.sha256)


def contents_by_sha256(session: Session, digests: Sequence[str]) -> dict[str, DocumentContent]:
    if not digests:
        return {}
    rows = session.scalars(select(DocumentContent).where(DocumentContent.sha256.in_(digests)))
    return {row.sha256: row for row in rows}


def persons_of_identities(
    session: Session, identity_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, uuid.UUID]:
    """Each identity's person now (the record a document is in), in one query."""
    if not identity_ids:
        return {}
    rows = session.execute(
        select(LocalIdentity.id, LocalIdentity.person_id).where(
            LocalIdentity.id.in_(set(identity_ids))
        )
    )
    return {identity_id: person_id for identity_id, person_id in rows}  # noqa: C416 - rows, not pairs
