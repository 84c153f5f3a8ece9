"""Filing submissions in the registry: the checks that read (`plan_deposit`: the depositor,
the patient's identity and the depositor's right to it, duplicates, authors, the version
replaced) and then the writes (`filing_writes`), in one transaction.

`file_deposits` files a group of submissions in one transaction (the group committer's
groups, see `deposit.py`): the reads every submission needs (the depositor's token state,
the identities, what is already stored) are made once for the group, not once per
submission; a submission refused by the checks is answered with its error and the others
are filed.
"""

from __future__ import annotations

import hashlib
import uuid
from collections import defaultdict
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import Connection, Row, Table, bindparam, literal, select, union_all
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from partage.access.decision import decide_deposit
from partage.directory.models import Organization, Practitioner
from partage.documents import lookups, service
from partage.documents.filing_writes import (
    DepositPlan,
    PreparedContent,
    ResolvedAuthor,
    not_current,
    write_deposits,
)
from partage.documents.models import (
    DocumentContent,
    DocumentEntry,
    DocumentStatus,
    Folder,
    RelationKind,
    SubmissionSet,
)
from partage.documents.submission import (
    MAX_DOCUMENT_BYTES,
    AuthorRef,
    DepositResult,
    NewDocument,
    PatientRef,
    Submission,
    SubmissionError,
)
from partage.identity.fhir_pix import identity_survivor, survivor_person
from partage.identity.models import LocalIdentity, Person
from partage.security.principal import Principal


@dataclass(frozen=True)
class FilingIdentity:
    """The local identity documents are filed under."""

    id: uuid.UUID
    person_id: uuid.UUID
    establishment_id: uuid.UUID


IdentityRow = Row[Any, Any, Any, Any, Any]  # local_id, id, person_id, establishment_id, active


@dataclass(frozen=True)
class DeferredCaller:
    """A depositor confirmed in the filing transaction itself (a bearer token's current
    state: one read per group for all the submissions of the same `key`). What `confirm`
    raises is the submission's answer."""

    key: Hashable
    confirm: Callable[[Connection], Principal]


@dataclass(frozen=True)
class DepositRequest:
    """A submission ready to file: completed, its contents checked, hashed and encrypted."""

    submission: Submission
    contents: list[PreparedContent]
    sha1s: list[str]
    principal: Principal | DeferredCaller


# The hot reads of a deposit, on the tables themselves (Core, through the session's
# connection): the ORM's statement handling costs more than these statements.
_IDENTITIES = cast(Table, LocalIdentity.__table__)
_SETS = cast(Table, SubmissionSet.__table__)
_ENTRIES = cast(Table, DocumentEntry.__table__)
_CONTENTS = cast(Table, DocumentContent.__table__)
_IDENTITIES_BY_LOCAL_ID = select(
    _IDENTITIES.c.local_id,
    _IDENTITIES.c.id,
    _IDENTITIES.c.person_id,
    _IDENTITIES.c.establishment_id,
    _IDENTITIES.c.active,
).where(
    _IDENTITIES.c.establishment_id == bindparam("establishment"),
    _IDENTITIES.c.local_id.in_(bindparam("local_ids", expanding=True)),
)
# What of some submissions is already stored: their ids, their documents' ids, contents.
_ALREADY_STORED = union_all(
    select(literal("set"), _SETS.c.unique_id).where(
        _SETS.c.unique_id.in_(bindparam("sets", expanding=True))
    ),
    select(literal("document"), _ENTRIES.c.unique_id).where(
        _ENTRIES.c.unique_id.in_(bindparam("documents", expanding=True))
    ),
    select(literal("content"), _CONTENTS.c.sha256).where(
        _CONTENTS.c.sha256.in_(bindparam("contents", expanding=True))
    ),
)


@dataclass
class Registered:
    """What the registry already holds of a group of submissions, read once for the group:
    the identities they name by local id, their submission, document and content ids. The
    submissions planned in the group are added as they are (a second one with the same ids
    in the same group is a duplicate, as it would be in the next group)."""

    identities: dict[tuple[uuid.UUID, str], IdentityRow]
    sets: set[str] = field(default_factory=set)
    documents: set[str] = field(default_factory=set)
    contents: set[str] = field(default_factory=set)

    @classmethod
    def read(cls, session: Session, requests: Sequence[DepositRequest]) -> Registered:
        connection = session.connection()
        by_domain: dict[uuid.UUID, set[str]] = defaultdict(set)
        for request in requests:
            patient = request.submission.patient
            if patient.domain_oid and patient.local_id:
                domain_id = lookups.domain_establishment(session, patient.domain_oid)
                if domain_id is not None:
                    by_domain[domain_id].add(patient.local_id)
        registered = cls(identities={})
        for domain_id, local_ids in by_domain.items():
            for row in connection.execute(
                _IDENTITIES_BY_LOCAL_ID,
                {"establishment": domain_id, "local_ids": sorted(local_ids)},
            ):
                registered.identities[(domain_id, row.local_id)] = row
        found: dict[str, set[str]] = {
            "set": registered.sets,
            "document": registered.documents,
            "content": registered.contents,
        }
        for kind, value in connection.execute(
            _ALREADY_STORED,
            {
                "sets": [r.submission.unique_id for r in requests],
                "documents": [d.unique_id for r in requests for d in r.submission.documents],
                "contents": [c.sha256 for r in requests for c in r.contents],
            },
        ):
            found[kind].add(value)
        return registered

    def add(self, plan: DepositPlan) -> None:
        self.sets.add(plan.submission.unique_id)
        self.documents.update(d.unique_id for d in plan.submission.documents)


def file_deposits(
    session: Session, requests: Sequence[DepositRequest]
) -> list[DepositResult | Exception]:
    """Check and file submissions in the caller's transaction: each one's result, or the
    error that refused it (it wrote nothing). An error of the database fails them all."""
    principals = _confirm_callers(session, requests)
    registered = Registered.read(
        session, [r for r, p in zip(requests, principals, strict=True) if isinstance(p, Principal)]
    )
    # Each submission's error, or None where it is planned (its result comes from the write).
    refusals: list[Exception | None] = []
    plans: list[DepositPlan] = []
    for request, principal in zip(requests, principals, strict=True):
        if not isinstance(principal, Principal):
            refusals.append(principal)
            continue
        try:
            plan = plan_deposit(
                session, principal=principal, request=request, registered=registered
            )
        except SubmissionError as error:
            refusals.append(error)
            continue
        registered.add(plan)
        plans.append(plan)
        refusals.append(None)
    written = iter(write_deposits(session, plans, stored=registered.contents))
    return [next(written) if refusal is None else refusal for refusal in refusals]


def file_deposit(session: Session, request: DepositRequest) -> DepositResult:
    """`file_deposits` for one submission: its result, or its error raised."""
    (result,) = file_deposits(session, [request])
    if isinstance(result, Exception):
        raise result
    return result


def _confirm_callers(
    session: Session, requests: Sequence[DepositRequest]
) -> list[Principal | Exception]:
    confirmed: dict[Hashable, Principal | Exception] = {}
    principals: list[Principal | Exception] = []
    for request in requests:
        caller = request.principal
        if isinstance(caller, Principal):
            principals.append(caller)
            continue
        if caller.key not in confirmed:
            try:
                confirmed[caller.key] = caller.confirm(session.connection())
            except SQLAlchemyError:
                raise
            except Exception as error:  # the caller's refusal is this submission's answer
                confirmed[caller.key] = error
        principals.append(confirmed[caller.key])
    return principals


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
    session: Session,
    *,
    principal: Principal,
    patient: PatientRef,
    registered: Mapping[tuple[uuid.UUID, str], IdentityRow],
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
            row = registered.get((domain_id, patient.local_id))
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


def plan_deposit(
    session: Session, *, principal: Principal, request: DepositRequest, registered: Registered
) -> DepositPlan:
    """Everything a deposit must check that reads the registry, before any write. A
    replaced version that stopped being current meanwhile fails its conditional update."""
    submission = request.submission
    identity = resolve_identity(
        session, principal=principal, patient=submission.patient, registered=registered.identities
    )
    decision = decide_deposit(principal, identity_establishment_id=identity.establishment_id)
    person_id = identity.person_id
    unique_ids = [d.unique_id for d in submission.documents]
    if len(set(unique_ids)) != len(unique_ids):
        raise SubmissionError("two documents of the submission share a uniqueId", code="duplicate")
    if submission.unique_id in registered.sets:
        raise _duplicate_submission(submission)
    for document in submission.documents:
        if document.unique_id in registered.documents:
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
                    raise not_current(document, str(target.status))
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
        contents=request.contents,
        sha1s=request.sha1s,
        authors=authors,
        replaced=replaced_all,
        relations=relations_all,
        folders=folders,
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


def _relation_target(
    session: Session, target_id: uuid.UUID | None, unique_id: str | None
) -> DocumentEntry | None:
    if target_id is not None:
        return service.get_entry(session, target_id)
    if unique_id:
        return service.entry_by_unique_id(session, unique_id)
    return None
