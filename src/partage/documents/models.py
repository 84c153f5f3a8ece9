"""The document registry (metadata, after IHE XDS / MHD and the French PDSm profile) and the
repository's index of stored contents.

A document entry is filed under the local identity it was submitted for, not under a
territorial person: the person is read through the identity, so that merging or unmerging
identities carries their documents with them and nothing here has to be rewritten. Entries
are never deleted: a replaced version is `superseded`, an error `entered-in-error`.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, LargeBinary, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from partage.db import Base, new_uuid, utcnow


class DocumentStatus(StrEnum):
    current = "current"
    superseded = "superseded"  # a newer version replaced it; still readable in the history
    entered_in_error = "entered-in-error"
    archived = "archived"  # out of the default lists, still readable


class RelationKind(StrEnum):
    replaces = "replaces"
    appends = "appends"
    transforms = "transforms"


class Confidentiality(StrEnum):
    normal = "N"
    restricted = "R"
    very_restricted = "V"


class DocumentContent(Base):
    """One stored content, once whatever the number of documents carrying it: named by the
    SHA-256 of its plain bytes, encrypted under its own data key, which is kept here wrapped
    by a key-encryption key (`kek_id`) — rotating that key rewraps these rows only."""

    __tablename__ = "documents_contents"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    # FHIR R4's Attachment.hash is SHA-1: kept to answer it, never to name anything.
    sha1: Mapped[str | None] = mapped_column(String(40))
    size: Mapped[int] = mapped_column(BigInteger)
    # Where the encrypted bytes are, in the store's own terms (a file name, an object key).
    storage_key: Mapped[str] = mapped_column(String(200), index=True)
    scheme: Mapped[str] = mapped_column(String(32))
    kek_id: Mapped[str] = mapped_column(String(64), index=True)
    wrapped_key: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class SubmissionSet(Base):
    """One deposit: what a system (or a person) submitted together, all or nothing."""

    __tablename__ = "documents_submission_sets"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_uuid)
    unique_id: Mapped[str] = mapped_column(String(128), unique=True)
    source_id: Mapped[str] = mapped_column(String(128))
    local_identity_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("identity_local.id"), index=True
    )
    establishment_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("establishments.id"))
    title: Mapped[str | None] = mapped_column(String(300))
    author_label: Mapped[str | None] = mapped_column(String(300))
    # Who deposited it (client, account): the audit trail has the rest.
    submitted_by: Mapped[str] = mapped_column(String(200))
    # "mhd" (ITI-65), "mdm" (HL7v2 over MLLP), "folder" (drop folder), "portal".
    channel: Mapped[str] = mapped_column(String(16))
    submitted_at: Mapped[datetime] = mapped_column(default=utcnow)


class DocumentEntry(Base):
    """One version of a document: its metadata and the content it points to."""

    __tablename__ = "documents_entries"
    __table_args__ = (
        # One patient's documents, newest first, with a stable tie-break: the timeline and
        # the default ITI-67 order.
        Index("ix_documents_entries_identity_date", "local_identity_id", "creation_time", "id"),
        Index("ix_documents_entries_lineage", "lineage_id", "version"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_uuid)
    # The XDS uniqueId (masterIdentifier): one per version, never reused.
    unique_id: Mapped[str] = mapped_column(String(128), unique=True)
    # The first version's id: every version of a document shares it.
    lineage_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    version: Mapped[int] = mapped_column(Integer, default=1)
    status: Mapped[DocumentStatus] = mapped_column(String(16), default=DocumentStatus.current)
    local_identity_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("identity_local.id"))
    # The establishment the document was deposited by (its identification domain).
    establishment_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("establishments.id"), index=True
    )
    submission_set_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("documents_submission_sets.id"), index=True
    )
    # Type (LOINC) and class (category).
    type_system: Mapped[str] = mapped_column(String(64))
    type_code: Mapped[str] = mapped_column(String(64), index=True)
    type_display: Mapped[str | None] = mapped_column(String(300))
    class_system: Mapped[str | None] = mapped_column(String(64))
    class_code: Mapped[str | None] = mapped_column(String(64))
    class_display: Mapped[str | None] = mapped_column(String(300))
    format_code: Mapped[str | None] = mapped_column(String(128))
    mime_type: Mapped[str] = mapped_column(String(100))
    language: Mapped[str | None] = mapped_column(String(16))
    title: Mapped[str | None] = mapped_column(String(300))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(ForeignKey("documents_contents.sha256"))
    creation_time: Mapped[datetime] = mapped_column()
    service_start: Mapped[datetime | None] = mapped_column()
    service_end: Mapped[datetime | None] = mapped_column()
    # Author: a professional and a structure of the directory when known, and as submitted.
    author_practitioner_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("directory_practitioners.id"), index=True
    )
    author_organization_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("directory_organizations.id")
    )
    author_label: Mapped[str | None] = mapped_column(String(300))
    # The account that deposited it from the portal, if a person did.
    author_account_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, index=True)
    facility_type_code: Mapped[str | None] = mapped_column(String(64))
    facility_type_display: Mapped[str | None] = mapped_column(String(300))
    practice_setting_code: Mapped[str | None] = mapped_column(String(64))
    practice_setting_display: Mapped[str | None] = mapped_column(String(300))
    confidentiality: Mapped[str] = mapped_column(String(1), default=Confidentiality.normal)
    # The French visibility codes (PDSm): hidden from the patient, masked from professionals
    # (the author and the patient still see it), hidden from the patient's legal guardians.
    invisible_patient: Mapped[bool] = mapped_column(Boolean, default=False)
    masked_ps: Mapped[bool] = mapped_column(Boolean, default=False)
    invisible_legal_reps: Mapped[bool] = mapped_column(Boolean, default=False)
    deposited_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class DocumentRelation(Base):
    """`source` replaces / appends to / transforms `target`."""

    __tablename__ = "documents_relations"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_uuid)
    source_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("documents_entries.id"), index=True)
    target_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("documents_entries.id"), index=True)
    kind: Mapped[RelationKind] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Folder(Base):
    """An XDS folder: documents a care episode groups (a stay, a pregnancy follow-up)."""

    __tablename__ = "documents_folders"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_uuid)
    unique_id: Mapped[str] = mapped_column(String(128), unique=True)
    local_identity_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("identity_local.id"), index=True
    )
    title: Mapped[str | None] = mapped_column(String(300))
    code: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class FolderMember(Base):
    __tablename__ = "documents_folder_members"

    folder_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("documents_folders.id"), primary_key=True
    )
    document_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("documents_entries.id"), primary_key=True, index=True
    )
    submission_set_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("documents_submission_sets.id"))
