"""The writes of filing: the rows of one or many planned deposits (one statement per table
for all of them), the versions they replace superseded, one audit row per document, all in
the caller's transaction. What to write is decided before, by `filing.plan_deposit`.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Protocol, cast

from sqlalchemy import CursorResult, Table, bindparam, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from partage.access.decision import Decision
from partage.audit.actions import record
from partage.bulk import COPY_FROM, insert_rows
from partage.db import utcnow
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
    Coding,
    DepositedDocument,
    DepositResult,
    NewDocument,
    Submission,
    SubmissionError,
)
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
class ResolvedAuthor:
    practitioner_id: uuid.UUID | None
    organization_id: uuid.UUID | None
    label: str | None


def _insert_contents(
    session: Session, rows: list[dict[str, Any]], stored: Collection[str]
) -> set[str]:
    """Index contents; the storage keys of the rows written (a content deposited before, or
    by another deposit at once, keeps the first row and its blob). `stored`: the hashes
    this transaction found already stored."""
    rows = [row for row in rows if row["sha256"] not in stored]
    if not rows:
        return set()
    table = cast(Table, DocumentContent.__table__)
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql" and len(rows) >= COPY_FROM:
        # A group of new contents by COPY, not one INSERT … RETURNING per row: one stored
        # meanwhile by another process fails the group on its unique key, and the group
        # committer then files each deposit alone, by the INSERT below.
        insert_rows(session, table, rows)
        return {row["storage_key"] for row in rows}
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


def _table(model: type[Any]) -> Table:
    return cast(Table, model.__table__)


def not_current(document: NewDocument, status: str) -> SubmissionError:
    return SubmissionError(
        f"the document replaced is {status}, not current",
        where=f"{document.where}.relatesTo",
        code="value",
    )


def write_deposits(
    session: Session, plans: list[DepositPlan], *, stored: Collection[str] = ()
) -> list[DepositResult]:
    """Write planned deposits: rows inserted (one statement per table for all of them),
    replaced versions superseded, one audit row per document — in the caller's
    transaction. A failure fails them all (the group committer then retries one by one).
    `stored`: the contents (SHA-256) the transaction found already stored."""
    now = utcnow()
    rows = _Rows()
    results = [_deposit_rows(session, plan, rows, now) for plan in plans]
    won = _insert_contents(session, list(rows.contents.values()), stored)
    results = [
        replace(
            result,
            stored_contents=frozenset(c.storage_key for c in plan.contents if c.storage_key in won),
        )
        for plan, result in zip(plans, results, strict=True)
    ]
    insert_rows(session, _table(SubmissionSet), rows.sets)
    insert_rows(session, _table(Folder), rows.folders)
    insert_rows(session, _table(DocumentEntry), rows.entries)
    insert_rows(session, _table(DocumentRelation), rows.relations)
    insert_rows(session, _table(FolderMember), rows.members)
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
                raise not_current(document, "no longer current")
        assert document.type is not None
        assert document.creation_time is not None
        rows.entries.append(
            entry_row(
                document,
                entry_id=entry_id,
                lineage_id=lineage_id,
                version=version,
                identity_id=plan.identity_id,
                establishment_id=plan.establishment_id,
                submission_set_id=submission_set_id,
                sha256=content.sha256,
                author=author,
                principal=principal,
                now=now,
            )
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


def entry_row(
    document: NewDocument,
    *,
    entry_id: uuid.UUID,
    lineage_id: uuid.UUID,
    version: int,
    identity_id: uuid.UUID,
    establishment_id: uuid.UUID,
    submission_set_id: uuid.UUID,
    sha256: str,
    author: ResolvedAuthor,
    principal: Principal,
    now: datetime,
) -> dict[str, Any]:
    """The registry row of a document filed now (a deposit's, or the bulk loader's)."""
    assert document.type is not None  # completed before filing
    assert document.creation_time is not None
    kind, klass = document.type, document.class_
    return {
        "id": entry_id,
        "unique_id": document.unique_id,
        "lineage_id": lineage_id,
        "version": version,
        "status": DocumentStatus.current.value,
        "local_identity_id": identity_id,
        "establishment_id": establishment_id,
        "submission_set_id": submission_set_id,
        "type_system": kind.system or "",
        "type_code": kind.code,
        "type_display": kind.display,
        "class_system": klass.system if klass else None,
        "class_code": _code(klass),
        "class_display": _display(klass),
        "format_code": document.format_code,
        "mime_type": document.mime_type,
        "language": document.language,
        "title": (document.title or "")[:300] or None,
        "size": len(document.content),
        "sha256": sha256,
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


def record_refused_deposit(
    session: Session,
    principal: Principal,
    error: SubmissionError,
    *,
    person_id: uuid.UUID | None = None,
    **detail: str,
) -> None:
    """A refused deposit leaves a trace, whatever its channel: who tried what and why (never
    the content)."""
    record(
        session,
        actor=principal.actor,
        action="document.deposit",
        outcome="refused",
        entity_type="DocumentReference",
        person_id=str(person_id) if person_id is not None else None,
        detail={**detail, "reason": error.message[:300], "where": error.where[:200]},
    )


def _code(coding: Coding | None) -> str | None:
    return coding.code if coding is not None else None


def _display(coding: Coding | None) -> str | None:
    return coding.display if coding is not None else None


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
