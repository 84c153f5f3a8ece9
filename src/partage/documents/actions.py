"""Changes to a filed document by its depositor: status (entered-in-error, archived, current
again) and visibility labels. Each runs in the caller's transaction and records its audit
row there; none commits. Deposits themselves are `filing.py`'s (and `filing_writes.py`'s).
"""

from __future__ import annotations

import uuid

from sqlalchemy.orm import Session

from partage.access.decision import Action, Decision, NotFound, require
from partage.db import utcnow
from partage.documents import service
from partage.documents.filing_writes import audit_document
from partage.documents.models import (
    DocumentEntry,
    DocumentStatus,
)
from partage.documents.submission import (
    INVISIBLE_PATIENT,
    INVISIBLE_REPRESENTANTS_LEGAUX,
    MASQUE_PS,
    SubmissionError,
)
from partage.security.principal import Principal

_CHANGEABLE = {
    DocumentStatus.current: frozenset({DocumentStatus.entered_in_error, DocumentStatus.archived}),
    DocumentStatus.archived: frozenset({DocumentStatus.current, DocumentStatus.entered_in_error}),
    DocumentStatus.superseded: frozenset({DocumentStatus.entered_in_error}),
    DocumentStatus.entered_in_error: frozenset(),
}


def entry_for_author(
    session: Session, *, principal: Principal, entry_id: uuid.UUID
) -> tuple[DocumentEntry, Decision]:
    """A document its depositor (the establishment's system, or the professional who
    deposited it) may change; NotFound otherwise, as if it did not exist."""
    require(session, principal, Action.document_deposit, entity_type="DocumentReference")
    entry = service.get_entry(session, entry_id)
    if entry is None:
        raise NotFound()
    access = service.entry_access(session, principal, entry)
    if access is None:
        raise NotFound()
    _, grant = access
    if not grant.is_author_of(service.facts(entry)):
        raise NotFound()
    return entry, grant.decision


def do_change_status(
    session: Session,
    *,
    principal: Principal,
    entry_id: uuid.UUID,
    status: DocumentStatus,
    reason: str | None = None,
) -> DocumentEntry:
    entry, decision = entry_for_author(session, principal=principal, entry_id=entry_id)
    current = DocumentStatus(entry.status)
    if status == current:
        return entry
    if status not in _CHANGEABLE[current]:
        raise SubmissionError(
            f"a document {current.value} cannot become {status.value}", where="status", code="value"
        )
    entry.status = status
    entry.updated_at = utcnow()
    person_id = service.person_of_identity(session, entry.local_identity_id)
    assert person_id is not None
    audit_document(
        session,
        principal=principal,
        decision=decision,
        action="document.status",
        entry_id=entry.id,
        person_id=person_id,
        detail={"from": current.value, "to": status.value, "reason": reason},
    )
    return entry


def do_set_visibility(
    session: Session,
    *,
    principal: Principal,
    entry_id: uuid.UUID,
    visibility: frozenset[str],
    confidentiality: str | None = None,
) -> DocumentEntry:
    entry, decision = entry_for_author(session, principal=principal, entry_id=entry_id)
    before = {
        "invisible_patient": entry.invisible_patient,
        "masked_ps": entry.masked_ps,
        "invisible_legal_reps": entry.invisible_legal_reps,
        "confidentiality": entry.confidentiality,
    }
    entry.invisible_patient = INVISIBLE_PATIENT in visibility
    entry.masked_ps = MASQUE_PS in visibility
    entry.invisible_legal_reps = INVISIBLE_REPRESENTANTS_LEGAUX in visibility
    if confidentiality is not None:
        entry.confidentiality = confidentiality
    entry.updated_at = utcnow()
    person_id = service.person_of_identity(session, entry.local_identity_id)
    assert person_id is not None
    audit_document(
        session,
        principal=principal,
        decision=decision,
        action="document.visibility",
        entry_id=entry.id,
        person_id=person_id,
        detail={"before": before, "after": sorted(visibility), "confidentiality": confidentiality},
    )
    return entry
