"""Filing a submission in the registry: the checks that read (`plan_deposit`: the patient's
identity and the depositor's right, duplicates, authors, the version replaced, the contents
already stored) and the writes (`write_deposits`: the rows of one or many deposits, one
statement per table, and their audit rows). `deposit.py` runs them, the checks outside the
write transaction; `do_deposit` runs both in one.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, cast

from sqlalchemy import CursorResult, Table, bindparam, insert, literal, select, union_all, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from partage.access.decision import Decision, decide_deposit
from partage.audit.actions import record
from partage.db import utcnow
from partage.directory.models import Organization, Practitioner
from partage.documents import lookups, service
from partage.documents.models import (
    DocumentContent,
    DocumentEntry,
    DocumentRelation,
    DocumentStatus,
    Folder,
    FolderMember,
    RelationKind,
    SubmissionSet,
)
from partage.documents.submission import (
    INVISIBLE_PATIENT,
    INVISIBLE_REPRESENTANTS_LEGAUX,
    MASQUE_PS,
    MAX_DOCUMENT_BYTES,
    AuthorRef,
    Coding,
    DepositedDocument,
    DepositResult,
    NewDocument,
    PatientRef,
    Submission,
    SubmissionError,
)
from partage.identity.fhir_pix import identity_survivor, survivor_person
from partage.identity.models import LocalIdentity, Person
from partage.security.principal import Principal


class PreparedContent(Protocol):
    """A content hashed and encrypted, ready to be indexed (see `repository.py`)."""

    @property
    def sha256(self) -> str: ...
    @property
    def size(self) -> int: ...
    @property
    def storage_key(self) -> str: ...
    @property
    def scheme(self) -> str: ...
    @property
    def kek_id(self) -> str: ...
    @property
    def wrapped_key(self) -> bytes: ...


@dataclass(frozen=True)
class FilingIdentity:
    """The local identity documents are filed under."""

    id: uuid.UUID
    person_id: uuid.UUID
    establishment_id: uuid.UUID


# The hot reads and writes of a deposit, on the tables themselves (Core, through the
# session's connection): the ORM's statement handling costs more than these statements.
_IDENTITIES = cast(Table, LocalIdentity.__table__)
_SETS = cast(Table, SubmissionSet.__table__)
_ENTRIES = cast(Table, DocumentEntry.__table__)
_CONTENTS = cast(Table, DocumentContent.__table__)
_IDENTITY_BY_LOCAL_ID = select(
    _IDENTITIES.c.id,
    _IDENTITIES.c.person_id,
    _IDENTITIES.c.establishment_id,
    _IDENTITIES.c.active,
).where(
    _IDENTITIES.c.establishment_id == bindparam("establishment"),
    _IDENTITIES.c.local_id == bindparam("local_id"),
)
# What of a submission is already stored: its id, its documents' ids, its contents.
_ALREADY_STORED = union_all(
    select(literal("set"), _SETS.c.unique_id).where(_SETS.c.unique_id == bindparam("set")),
    select(literal("document"), _ENTRIES.c.unique_id).where(
        _ENTRIES.c.unique_id.in_(bindparam("documents", expanding=True))
    ),
    select(literal("content"), _CONTENTS.c.sha256).where(
        _CONTENTS.c.sha256.in_(bindparam("contents", expanding=True))
    ),
)


@dataclass(frozen=True)
class ResolvedAuthor:
    practitioner_id: uuid.UUID | None
    organization_id: uuid.UUID | None
    label: str | None


def check_content(document: NewDocument, *, max_bytes: int = MAX_DOCUMENT_BYTES) -> str:
    """What can be checked of a document alone, before anything is written; its SHA-1."""
    where = document.where
    if not document.content:
        raise SubmissionError("the document's content is empty", where=where, code="required")
    if len(document.content) > max_bytes:
        raise SubmissionError(
            f"the document weighs {len(document.content)} bytes, more than the "
            f"{max_bytes} accepted",
            where=where,
            code="too-long",
        )
    if document.declared_size is not None and document.declared_size != len(document.content):
        raise SubmissionError(
            f"the declared size ({document.declared_size}) is not the content's size "
            f"({len(document.content)})",
            where=f"{where}.size" if where else "size",
            code="value",
        )
    sha1 = hashlib.sha1(document.content, usedforsecurity=False)
    if document.declared_hash is not None:
        if len(document.declared_hash) == 20:
            matches = sha1.digest() == document.declared_hash
        elif len(document.declared_hash) == 32:
            matches = hashlib.sha256(document.content).digest() == document.declared_hash
        else:
            raise SubmissionError(
                "the declared hash is neither a SHA-1 nor a SHA-256",
                where=f"{where}.hash" if where else "hash",
                code="value",
            )
        if not matches:
            raise SubmissionError(
                "the declared hash does not match the content",
                where=f"{where}.hash" if where else "hash",
                code="value",
            )
    if document.type is None or not document.type.code:
        raise SubmissionError(
            "the document's type (LOINC) is missing", where=f"{where}.type", code="required"
        )
    if not document.mime_type:
        raise SubmissionError(
            "the document's content type is missing", where=f"{where}.contentType", code="required"
        )
    return sha1.hexdigest()


def resolve_identity(
    session: Session, *, principal: Principal, patient: PatientRef
) -> FilingIdentity:
    """The local identity the documents are filed under, once the depositor may.

    "Unknown" and "not yours" get the same answer: a depositor learns nothing of the
    identities of other establishments."""
    refused = SubmissionError(
        "no identity of this patient in your identification domain: give the patient's "
        "identifier (IPP) with your domain's OID",
        where="subject",
        code="not-found",
    )
    identity: LocalIdentity | None = None
    if patient.domain_oid and patient.local_id:
        domain_id = lookups.domain_establishment(session, patient.domain_oid)
        if domain_id is not None:
            row = (
                session.connection()
                .execute(
                    _IDENTITY_BY_LOCAL_ID,
                    {"establishment": domain_id, "local_id": patient.local_id},
                )
                .first()
            )
            if row is not None and row.active:
                found = FilingIdentity(row.id, row.person_id, row.establishment_id)
                return _allowed(principal, found, refused)
            if row is not None:
                # Merged by its establishment (A40): filed under the surviving identity.
                identity = identity_survivor(session, session.get_one(LocalIdentity, row.id))
    else:
        person: Person | None = None
        if patient.person_id is not None:
            person = survivor_person(session, session.get(Person, patient.person_id))
        elif patient.ins:
            holder = session.scalars(
                select(LocalIdentity).where(
                    LocalIdentity.k_ins == patient.ins[:13],
                    LocalIdentity.ins == patient.ins,
                    LocalIdentity.status == "QUAL",
                    LocalIdentity.active,
                )
            ).first()
            person = (
                survivor_person(session, session.get(Person, holder.person_id)) if holder else None
            )
        if person is not None and principal.establishment_id is not None:
            identity = session.scalars(
                select(LocalIdentity)
                .where(
                    LocalIdentity.person_id == person.id,
                    LocalIdentity.establishment_id == principal.establishment_id,
                    LocalIdentity.active,
                )
                .order_by(LocalIdentity.created_at)
            ).first()
    if identity is None or not identity.active:
        raise refused
    return _allowed(
        principal,
        FilingIdentity(identity.id, identity.person_id, identity.establishment_id),
        refused,
    )


def _allowed(
    principal: Principal, identity: FilingIdentity, refused: SubmissionError
) -> FilingIdentity:
    if not decide_deposit(principal, identity_establishment_id=identity.establishment_id).allowed:
        raise refused
    return identity


def _author(session: Session, author: AuthorRef, where: str) -> ResolvedAuthor:
    practitioner: lookups.KnownPractitioner | None = None
    if author.practitioner_id is not None:
        row = session.get(Practitioner, author.practitioner_id)
        if row is not None:
            name = " ".join(p for p in (row.given_name, row.family_name) if p)
            practitioner = lookups.KnownPractitioner(row.id, name)
    elif author.practitioner_national_id:
        practitioner = lookups.practitioner_by_national_id(session, author.practitioner_national_id)
    if (author.practitioner_id or author.practitioner_national_id) and practitioner is None:
        known_as = author.practitioner_national_id or str(author.practitioner_id)
        raise SubmissionError(
            f"unknown author: no professional {known_as} in the territory's directory",
            where=where,
            code="not-found",
        )
    organization: Organization | None = None
    if author.organization_id is not None:
        organization = session.get(Organization, author.organization_id)
    elif author.organization_finess:
        organization = (
            session.scalars(
                select(Organization)
                .where(Organization.finess_et == author.organization_finess)
                .order_by(Organization.source_key)
            ).first()
            or session.scalars(
                select(Organization)
                .where(Organization.finess_ej == author.organization_finess)
                .order_by(Organization.source_key)
            ).first()
        )
    if (author.organization_id or author.organization_finess) and organization is None:
        known_as = author.organization_finess or str(author.organization_id)
        raise SubmissionError(
            f"unknown author organization: no structure {known_as} in the territory's directory",
            where=where,
            code="not-found",
        )
    label = author.label
    if not label and practitioner is not None:
        label = practitioner.label
    if organization is not None:
        label = f"{label} ({organization.name})" if label else organization.name
    return ResolvedAuthor(
        practitioner.id if practitioner else None,
        organization.id if organization else None,
        label,
    )


def _authors(session: Session, document: NewDocument) -> ResolvedAuthor:
    """The document's author: the first professional given, the first structure given."""
    if not document.authors or all(a.is_empty and not a.label for a in document.authors):
        raise SubmissionError(
            "the document has no author", where=f"{document.where}.author", code="required"
        )
    resolved = [
        _author(session, author, f"{document.where}.author[{i}]")
        for i, author in enumerate(document.authors)
    ]
    practitioner = next((r for r in resolved if r.practitioner_id), None)
    organization = next((r for r in resolved if r.organization_id), None)
    labels = [r.label for r in resolved if r.label]
    return ResolvedAuthor(
        practitioner.practitioner_id if practitioner else None,
        organization.organization_id if organization else None,
        "; ".join(labels)[:300] if labels else None,
    )


def _insert_contents(session: Session, rows: list[dict[str, Any]]) -> set[str]:
    """Index contents; the storage keys of the rows written (a content deposited before, or
    by another deposit at once, keeps the first row and its blob)."""
    if not rows:
        return set()
    table = cast(Table, DocumentContent.__table__)
    dialect = session.get_bind().dialect.name
    statement = (
        (postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table))
        .on_conflict_do_nothing(index_elements=["sha256"])
        .returning(table.c.storage_key)
    )
    return set(session.connection().execute(statement, rows).scalars())


@dataclass
class DepositPlan:
    """A submission checked against the registry (reads only): what to write."""

    principal: Principal
    decision: Decision
    submission: Submission
    identity_id: uuid.UUID
    establishment_id: uuid.UUID
    person_id: uuid.UUID
    contents: list[PreparedContent]
    sha1s: list[str]
    authors: list[ResolvedAuthor]
    # Per document: the entry it replaces (id, lineage, version) and its other relations.
    replaced: list[tuple[uuid.UUID, uuid.UUID, int] | None]
    relations: list[list[tuple[RelationKind, uuid.UUID]]]
    # Folders of the submission already in the registry (uniqueId → id).
    folders: dict[str, uuid.UUID]
    # Contents already in the repository when planned (their blobs are not written again).
    known_contents: set[str] = field(default_factory=set)
    # Filled by `write_deposit`: the contents whose rows this deposit wrote.
    stored: set[str] = field(default_factory=set)


def plan_deposit(
    session: Session,
    *,
    principal: Principal,
    submission: Submission,
    contents: list[PreparedContent],
    sha1s: list[str],
) -> DepositPlan:
    """Everything a deposit must check that reads the registry, before any write: it runs
    outside the write transaction (a read session), which then only inserts — a duplicate
    that slips in meanwhile fails on the unique indexes, a replaced version that stopped
    being current fails its conditional update."""
    identity = resolve_identity(session, principal=principal, patient=submission.patient)
    decision = decide_deposit(principal, identity_establishment_id=identity.establishment_id)
    person_id = identity.person_id
    unique_ids = [d.unique_id for d in submission.documents]
    if len(set(unique_ids)) != len(unique_ids):
        raise SubmissionError("two documents of the submission share a uniqueId", code="duplicate")
    stored: dict[str, set[str]] = {"set": set(), "document": set(), "content": set()}
    for kind, value in session.connection().execute(
        _ALREADY_STORED,
        {
            "set": submission.unique_id,
            "documents": unique_ids,
            "contents": [c.sha256 for c in contents],
        },
    ):
        stored[kind].add(value)
    if stored["set"]:
        raise _duplicate_submission(submission)
    taken = stored["document"]
    for document in submission.documents:
        if document.unique_id in taken:
            raise _duplicate_document(document)
    authors = [_authors(session, document) for document in submission.documents]
    replaced_all: list[tuple[uuid.UUID, uuid.UUID, int] | None] = []
    relations_all: list[list[tuple[RelationKind, uuid.UUID]]] = []
    for document in submission.documents:
        replaced: tuple[uuid.UUID, uuid.UUID, int] | None = None
        relations: list[tuple[RelationKind, uuid.UUID]] = []
        for relation in document.relations:
            target = _relation_target(session, relation.target_id, relation.target_unique_id)
            if (
                target is None
                or service.person_of_identity(session, target.local_identity_id) != person_id
            ):
                raise SubmissionError(
                    "the related document is not in this patient's record",
                    where=f"{document.where}.relatesTo",
                    code="not-found",
                )
            if relation.kind is RelationKind.replaces:
                if target.status != DocumentStatus.current:
                    raise _not_current(document, str(target.status))
                if replaced is not None:
                    raise SubmissionError(
                        "a document replaces one document only",
                        where=f"{document.where}.relatesTo",
                    )
                replaced = (target.id, target.lineage_id, target.version)
            relations.append((relation.kind, target.id))
        for folder_unique_id in document.folders:
            if folder_unique_id not in {f.unique_id for f in submission.folders}:
                raise SubmissionError(
                    f"the folder {folder_unique_id} is not part of the submission",
                    where=document.where,
                )
        replaced_all.append(replaced)
        relations_all.append(relations)
    folders: dict[str, uuid.UUID] = {}
    for folder in submission.folders:
        existing = session.scalars(
            select(Folder).where(Folder.unique_id == folder.unique_id)
        ).first()
        if existing is None:
            continue
        if service.person_of_identity(session, existing.local_identity_id) != person_id:
            raise SubmissionError(
                f"the folder {folder.unique_id} belongs to another patient", code="value"
            )
        folders[folder.unique_id] = existing.id
    return DepositPlan(
        principal=principal,
        decision=decision,
        submission=submission,
        identity_id=identity.id,
        establishment_id=identity.establishment_id,
        person_id=person_id,
        contents=contents,
        sha1s=sha1s,
        authors=authors,
        replaced=replaced_all,
        relations=relations_all,
        folders=folders,
        known_contents=stored["content"],
    )


def _duplicate_submission(submission: Submission) -> SubmissionError:
    return SubmissionError(
        f"the submission {submission.unique_id} was already received",
        where="SubmissionSet.identifier",
        code="duplicate",
    )


def _duplicate_document(document: NewDocument) -> SubmissionError:
    return SubmissionError(
        f"a document with the uniqueId {document.unique_id} is already stored",
        where=f"{document.where}.masterIdentifier",
        code="duplicate",
    )


def _not_current(document: NewDocument, status: str) -> SubmissionError:
    return SubmissionError(
        f"the document replaced is {status}, not current",
        where=f"{document.where}.relatesTo",
        code="value",
    )


_SUPERSEDE = (
    update(DocumentEntry)
    .where(
        DocumentEntry.id == bindparam("target"),
        DocumentEntry.status == DocumentStatus.current.value,
    )
    .values(status=DocumentStatus.superseded.value, updated_at=bindparam("now"))
)


@dataclass
class _Rows:
    """The rows of a group of deposits, inserted table by table."""

    contents: dict[str, dict[str, Any]] = field(default_factory=dict)
    sets: list[dict[str, Any]] = field(default_factory=list)
    folders: list[dict[str, Any]] = field(default_factory=list)
    entries: list[dict[str, Any]] = field(default_factory=list)
    relations: list[dict[str, Any]] = field(default_factory=list)
    members: list[dict[str, Any]] = field(default_factory=list)


def write_deposit(session: Session, plan: DepositPlan) -> DepositResult:
    """Write a planned deposit in the caller's transaction (see `write_deposits`)."""
    return write_deposits(session, [plan])[0]


def write_deposits(session: Session, plans: list[DepositPlan]) -> list[DepositResult]:
    """Write planned deposits: rows inserted (one statement per table for all of them),
    replaced versions superseded, one audit row per document — in the caller's
    transaction. A failure fails them all (the group committer then retries one by one)."""
    now = utcnow()
    rows = _Rows()
    results = [_deposit_rows(session, plan, rows, now) for plan in plans]
    won = _insert_contents(session, list(rows.contents.values()))
    for plan in plans:
        plan.stored = {c.sha256 for c in plan.contents if c.storage_key in won}
    connection = session.connection()
    for model, values in (
        (SubmissionSet, rows.sets),
        (Folder, rows.folders),
        (DocumentEntry, rows.entries),
        (DocumentRelation, rows.relations),
        (FolderMember, rows.members),
    ):
        if values:
            connection.execute(insert(cast(Table, model.__table__)), values)
    return results


def _deposit_rows(session: Session, plan: DepositPlan, rows: _Rows, now: datetime) -> DepositResult:
    submission, principal = plan.submission, plan.principal
    for content, sha1 in zip(plan.contents, plan.sha1s, strict=True):
        rows.contents.setdefault(
            content.sha256,
            {
                "sha256": content.sha256,
                "sha1": sha1,
                "size": content.size,
                "storage_key": content.storage_key,
                "scheme": content.scheme,
                "kek_id": content.kek_id,
                "wrapped_key": content.wrapped_key,
                "created_at": now,
            },
        )
    submission_set_id = uuid.uuid4()
    author_label = submission.author_label or (plan.authors[0].label if plan.authors else None)
    rows.sets.append(
        {
            "id": submission_set_id,
            "unique_id": submission.unique_id,
            "source_id": submission.source_id,
            "local_identity_id": plan.identity_id,
            "establishment_id": plan.establishment_id,
            "title": submission.title,
            "author_label": author_label,
            "submitted_by": principal.label[:200],
            "channel": submission.channel,
            "submitted_at": now,
        }
    )
    folder_ids = dict(plan.folders)
    for folder in submission.folders:
        if folder.unique_id not in folder_ids:
            folder_ids[folder.unique_id] = uuid.uuid4()
            rows.folders.append(
                {
                    "id": folder_ids[folder.unique_id],
                    "unique_id": folder.unique_id,
                    "local_identity_id": plan.identity_id,
                    "title": folder.title,
                    "code": folder.code,
                    "created_at": now,
                    "updated_at": now,
                }
            )
    deposited: list[DepositedDocument] = []
    for index, (document, content, author) in enumerate(
        zip(submission.documents, plan.contents, plan.authors, strict=True)
    ):
        entry_id = uuid.uuid4()
        lineage_id, version = entry_id, 1
        replaced = plan.replaced[index]
        if replaced is not None:
            target_id, lineage_id, previous = replaced
            version = previous + 1
            superseded = session.execute(_SUPERSEDE, {"target": target_id, "now": now})
            if not isinstance(superseded, CursorResult) or superseded.rowcount != 1:
                raise _not_current(document, "no longer current")
        assert document.type is not None
        assert document.creation_time is not None
        rows.entries.append(
            {
                "id": entry_id,
                "unique_id": document.unique_id,
                "lineage_id": lineage_id,
                "version": version,
                "status": DocumentStatus.current.value,
                "local_identity_id": plan.identity_id,
                "establishment_id": plan.establishment_id,
                "submission_set_id": submission_set_id,
                "type_system": document.type.system or "",
                "type_code": document.type.code,
                "type_display": document.type.display,
                "class_system": document.class_.system if document.class_ else None,
                "class_code": document.class_.code if document.class_ else None,
                "class_display": document.class_.display if document.class_ else None,
                "format_code": document.format_code,
                "mime_type": document.mime_type,
                "language": document.language,
                "title": (document.title or "")[:300] or None,
                "size": content.size,
                "sha256": content.sha256,
                "creation_time": document.creation_time,
                "service_start": document.service_start,
                "service_end": document.service_end,
                "author_practitioner_id": author.practitioner_id,
                "author_organization_id": author.organization_id,
                "author_label": author.label,
                "author_account_id": principal.account_id if principal.kind == "account" else None,
                "facility_type_code": _code(document.facility_type),
                "facility_type_display": _display(document.facility_type),
                "practice_setting_code": _code(document.practice_setting),
                "practice_setting_display": _display(document.practice_setting),
                "confidentiality": document.confidentiality,
                "invisible_patient": INVISIBLE_PATIENT in document.visibility,
                "masked_ps": MASQUE_PS in document.visibility,
                "invisible_legal_reps": INVISIBLE_REPRESENTANTS_LEGAUX in document.visibility,
                "deposited_at": now,
                "updated_at": now,
            }
        )
        rows.relations += [
            {"id": uuid.uuid4(), "source_id": entry_id, "target_id": target, "kind": kind.value,
             "created_at": now}
            for kind, target in plan.relations[index]
        ]  # fmt: skip
        rows.members += [
            {"folder_id": folder_ids[f], "document_id": entry_id,
             "submission_set_id": submission_set_id}
            for f in document.folders
        ]  # fmt: skip
        audit_document(
            session,
            principal=principal,
            decision=plan.decision,
            action="document.deposit",
            entry_id=entry_id,
            person_id=plan.person_id,
            detail={
                "unique_id": document.unique_id,
                "submission": submission.unique_id,
                "channel": submission.channel,
                "version": version,
                **({"replaces": str(replaced[0])} if replaced is not None else {}),
            },
        )
        deposited.append(
            DepositedDocument(
                entry_id,
                document.unique_id,
                version,
                plan.person_id,
                replaced[0] if replaced is not None else None,
            )
        )
    return DepositResult(
        submission_set_id=submission_set_id,
        unique_id=submission.unique_id,
        person_id=plan.person_id,
        local_identity_id=plan.identity_id,
        documents=deposited,
    )


def _code(coding: Coding | None) -> str | None:
    return coding.code if coding is not None else None


def _display(coding: Coding | None) -> str | None:
    return coding.display if coding is not None else None


def do_deposit(
    session: Session,
    *,
    principal: Principal,
    submission: Submission,
    contents: list[PreparedContent],
    sha1s: list[str],
) -> DepositResult:
    """Check and file a submission's documents, all or none, in the caller's transaction."""
    plan = plan_deposit(
        session, principal=principal, submission=submission, contents=contents, sha1s=sha1s
    )
    return write_deposit(session, plan)


def _relation_target(
    session: Session, target_id: uuid.UUID | None, unique_id: str | None
) -> DocumentEntry | None:
    if target_id is not None:
        return service.get_entry(session, target_id)
    if unique_id:
        return service.entry_by_unique_id(session, unique_id)
    return None


def audit_document(
    session: Session,
    *,
    principal: Principal,
    decision: Decision,
    action: str,
    entry_id: uuid.UUID,
    person_id: uuid.UUID,
    detail: dict[str, Any],
) -> None:
    record(
        session,
        actor=principal.actor,
        action=action,
        entity_type="DocumentReference",
        entity_id=str(entry_id),
        person_id=str(person_id),
        basis=decision.basis_code,
        detail=detail,
    )
