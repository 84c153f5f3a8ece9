"""A deposit as every channel hands it over (FHIR MHD, HL7v2 MDM, the drop folder, the
portal): documents with their metadata and content, for one patient, all or nothing.

The channels parse their own formats into these types; `filing.file_deposits` checks and stores
them. Errors name the faulty part with `where` (a FHIRPath-like location in the channel's
terms), so each channel can answer in its own form (OperationOutcome, ACK ERR, failed/).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime

from partage.documents.models import Confidentiality, RelationKind

LOINC = "http://loinc.org"
# The visibility codes of the French document-sharing profiles (PDSm / DMP).
VISIBILITY_SYSTEM = "urn:oid:1.2.250.1.213.1.1.4.13"
INVISIBLE_PATIENT = "INVISIBLE_PATIENT"
MASQUE_PS = "MASQUE_PS"
INVISIBLE_REPRESENTANTS_LEGAUX = "INVISIBLE_REPRESENTANTS_LEGAUX"
VISIBILITY_CODES = frozenset({INVISIBLE_PATIENT, MASQUE_PS, INVISIBLE_REPRESENTANTS_LEGAUX})
CONFIDENTIALITY_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
# The most a single document may weigh (the largest imaging reports with their images).
MAX_DOCUMENT_BYTES = 64 * 1024 * 1024
CDA_MIME_TYPES = frozenset({"text/xml", "application/xml", "application/hl7-cda+xml"})


class SubmissionError(ValueError):
    """A deposit refused for what it contains: nothing of it is stored."""

    def __init__(self, message: str, *, where: str = "", code: str = "invalid") -> None:
        super().__init__(message)
        self.message = message
        self.where = where
        # FHIR IssueType: invalid, required, value, duplicate, not-found, too-long, forbidden
        self.code = code


@dataclass(frozen=True)
class Coding:
    system: str | None
    code: str
    display: str | None = None


@dataclass(frozen=True)
class PatientRef:
    """Who the documents are for. Best: the local identity (`domain_oid` + `local_id`, the
    depositing establishment's IPP). Else the territorial person (`person_id`) or a
    qualified INS, resolved to the depositor's own identity of that person."""

    domain_oid: str | None = None
    local_id: str | None = None
    person_id: uuid.UUID | None = None
    ins: str | None = None
    ins_oid: str | None = None


@dataclass(frozen=True)
class AuthorRef:
    """The author as submitted: a professional and/or a structure, by directory id or by
    national identifier (RPPS / ADELI; FINESS)."""

    practitioner_id: uuid.UUID | None = None
    practitioner_national_id: str | None = None
    organization_id: uuid.UUID | None = None
    organization_finess: str | None = None
    label: str | None = None

    @property
    def is_empty(self) -> bool:
        return not (
            self.practitioner_id
            or self.practitioner_national_id
            or self.organization_id
            or self.organization_finess
        )


@dataclass(frozen=True)
class Relation:
    kind: RelationKind
    # The related document: its entry id or its uniqueId.
    target_id: uuid.UUID | None = None
    target_unique_id: str | None = None


@dataclass
class NewDocument:
    unique_id: str
    content: bytes
    mime_type: str
    type: Coding | None = None
    class_: Coding | None = None
    format_code: str | None = None
    language: str | None = None
    title: str | None = None
    creation_time: datetime | None = None
    service_start: datetime | None = None
    service_end: datetime | None = None
    authors: list[AuthorRef] = field(default_factory=list)
    facility_type: Coding | None = None
    practice_setting: Coding | None = None
    confidentiality: str = Confidentiality.normal.value
    visibility: frozenset[str] = frozenset()
    relations: list[Relation] = field(default_factory=list)
    # What the sender declared, checked against the content.
    declared_size: int | None = None
    declared_hash: bytes | None = None  # SHA-1 (FHIR R4) or SHA-256, raw bytes
    folders: list[str] = field(default_factory=list)  # uniqueIds of folders of the submission
    # Where this document sits in the channel's message (for error locations).
    where: str = ""

    @property
    def is_cda(self) -> bool:
        return self.mime_type in CDA_MIME_TYPES


@dataclass(frozen=True)
class NewFolder:
    unique_id: str
    title: str | None = None
    code: str | None = None


@dataclass
class Submission:
    unique_id: str
    source_id: str
    patient: PatientRef
    channel: str  # mhd | mdm | folder | portal
    documents: list[NewDocument]
    title: str | None = None
    author_label: str | None = None
    folders: list[NewFolder] = field(default_factory=list)
    # Set by `actions.enrich_from_cda` when the patient comes from a CDA header only.
    patient_from_document: bool = False


@dataclass(frozen=True)
class DepositedDocument:
    id: uuid.UUID
    unique_id: str
    version: int
    person_id: uuid.UUID
    replaced_id: uuid.UUID | None


@dataclass(frozen=True)
class DepositResult:
    submission_set_id: uuid.UUID
    unique_id: str
    person_id: uuid.UUID
    local_identity_id: uuid.UUID
    documents: list[DepositedDocument]
    # The storage keys of the contents whose rows this deposit wrote; the others were
    # stored before (or by another deposit of the same group): their bytes are dropped.
    stored_contents: frozenset[str] = frozenset()
