"""One document read by someone: the access decision, its audit row, and the same answer for
a document that does not exist and one the reader may not see (FHIR and the portal alike).
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.orm import Session

from partage.access.decision import NotFound, RecordGrant, RecordSubject
from partage.audit.actions import record
from partage.documents import service
from partage.documents.models import DocumentEntry
from partage.security.principal import Principal


def read_entry(
    session: Session,
    principal: Principal,
    entry: DocumentEntry | None,
    *,
    action: str,
    entity_id: str,
    person_id: uuid.UUID | None = None,
    channel: str | None = None,
    detail: dict[str, Any] | None = None,
) -> tuple[DocumentEntry, RecordSubject, RecordGrant]:
    """`entry`, once the decision admits it for the reader (and, with `person_id`, once it is
    in that person's record), its read audited in the session's transaction. NotFound
    otherwise, whichever check failed, the refusal audited and committed: a refused read is
    part of the trace although the request fails. `entity_id` names what was asked for."""
    access = service.entry_access(session, principal, entry) if entry else None
    subject, grant = access or (None, None)
    in_record = True
    if person_id is not None:
        requested = service.subject_of(session, person_id)
        in_record = (
            requested is not None
            and subject is not None
            and requested.person_id == subject.person_id
        )
    base = {"channel": channel} if channel else {}
    if (
        entry is None
        or subject is None
        or grant is None
        or not in_record
        or not grant.admits(service.facts(entry))
    ):
        record(
            session,
            actor=principal.actor,
            action=action,
            outcome="not_found" if entry is None else "denied",
            entity_type="DocumentReference",
            entity_id=entity_id,
            person_id=str(subject.person_id) if subject is not None else None,
            detail={**base, **({"reason": grant.decision.reason} if grant is not None else {})},
        )
        session.commit()
        raise NotFound()
    record(
        session,
        actor=principal.actor,
        action=action,
        entity_type="DocumentReference",
        entity_id=str(entry.id),
        person_id=str(subject.person_id),
        basis=grant.decision.basis_code,
        detail={**base, **(detail or {})},
    )
    return entry, subject, grant
