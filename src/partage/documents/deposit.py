"""A deposit from end to end, whatever the channel: metadata completed from CDA headers,
contents checked, hashed and encrypted (outside the database transaction: CPU work must not
hold the write lock), staged in the repository, then checked and filed in the registry in
one transaction (`filing`), and the staged contents kept or dropped by its outcome.
"""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import UTC, datetime
from weakref import WeakKeyDictionary

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from partage.db import transaction
from partage.documents.cda import CdaDocument, InvalidCda, parse_cda
from partage.documents.filing import (
    DeferredCaller,
    DepositRequest,
    check_content,
    file_deposit,
    file_deposits,
)
from partage.documents.repository import Repository, StagedContent
from partage.documents.submission import (
    LOINC,
    VISIBILITY_CODES,
    AuthorRef,
    Coding,
    DepositResult,
    NewDocument,
    PatientRef,
    Submission,
    SubmissionError,
)
from partage.group_commit import GroupCommitter
from partage.identity.ins import INS_OIDS
from partage.security.principal import Principal


def _coding(value: object) -> Coding | None:
    code = getattr(value, "code", None)
    if not code:
        return None
    return Coding(getattr(value, "system", None), code, getattr(value, "display", None))


def complete_from_cda(document: NewDocument, header: CdaDocument) -> NewDocument:
    """What the submission left out, taken from the CDA header; what it gave stays."""
    event = header.service_events[0] if header.service_events else None
    authors = document.authors
    if not authors and header.author is not None:
        author = header.author
        name = author.name
        label = " ".join(
            p for p in (*(name.given if name else ()), name.family if name else None) if p
        )
        organization = author.organization
        if organization is not None and organization.name:
            label = f"{label} ({organization.name})" if label else organization.name
        # The header's author is the document's own statement: kept as written (a label),
        # not required to be in the directory, unlike an author the submitter declares.
        authors = [AuthorRef(label=label or author.device_name or author.national_id)]
    confidentiality = document.confidentiality
    visibility = document.visibility
    if header.confidentiality_code in ("N", "R", "V") and document.confidentiality == "N":
        confidentiality = header.confidentiality_code
    elif header.confidentiality_code in VISIBILITY_CODES:
        visibility = visibility | {header.confidentiality_code}
    return replace(
        document,
        type=document.type or _coding(header.code),
        title=document.title or header.title,
        creation_time=document.creation_time
        or (header.effective_time.at if header.effective_time else None),
        service_start=document.service_start or (event.start.at if event and event.start else None),
        service_end=document.service_end or (event.end.at if event and event.end else None),
        language=document.language or header.language_code,
        format_code=document.format_code or header.format_code,
        facility_type=document.facility_type or _coding(header.facility_type),
        practice_setting=document.practice_setting or _coding(header.practice_setting),
        authors=authors,
        confidentiality=confidentiality,
        visibility=visibility,
    )


def patient_from_cda(header: CdaDocument) -> PatientRef | None:
    """The patient a CDA header names: an id in an establishment's domain, else the INS."""
    for identifier in header.patient.ids:
        if identifier.extension and identifier.root not in INS_OIDS:
            return PatientRef(domain_oid=identifier.root, local_id=identifier.extension)
    if header.patient.ins:
        return PatientRef(ins=header.patient.ins, ins_oid=header.patient.ins_oid)
    return None


def prepare_submission(submission: Submission) -> Submission:
    """Complete CDA documents from their headers and apply the defaults; parse errors of a
    CDA become the submission's error."""
    documents: list[NewDocument] = []
    for document in submission.documents:
        if document.is_cda:
            try:
                header = parse_cda(document.content)
            except InvalidCda as error:
                raise SubmissionError(
                    f"the CDA document is not valid: {error}", where=document.where or "content"
                ) from None
            document = complete_from_cda(document, header)
            if submission.patient == PatientRef():
                found = patient_from_cda(header)
                if found is not None:
                    submission = replace(submission, patient=found, patient_from_document=True)
        if document.type is not None and not document.type.system:
            document = replace(document, type=replace(document.type, system=LOINC))
        if document.creation_time is None:
            document = replace(document, creation_time=datetime.now(UTC))
        documents.append(document)
    if submission.patient == PatientRef():
        raise SubmissionError("the patient is missing", where="subject", code="required")
    return replace(submission, documents=documents)


def deposit(
    sessions: sessionmaker[Session],
    repository: Repository,
    *,
    principal: Principal | DeferredCaller,
    submission: Submission,
    grouped: bool = False,
) -> DepositResult:
    """File the submission: all of it, or nothing (and no content left behind).

    `grouped`: filed with the deposits of other threads, one transaction for a group
    (`group_commit`), the group's reads made once: what a busy channel (the FHIR API)
    wants. Otherwise in a transaction of its own."""
    if not grouped:
        return _deposit(sessions, repository, principal=principal, submission=submission)
    writer = _writer(sessions)
    with writer.on_the_way():
        return _deposit(
            sessions, repository, principal=principal, submission=submission, writer=writer
        )


def _deposit(
    sessions: sessionmaker[Session],
    repository: Repository,
    *,
    principal: Principal | DeferredCaller,
    submission: Submission,
    writer: GroupCommitter[DepositRequest, DepositResult] | None = None,
) -> DepositResult:
    submission = prepare_submission(submission)
    sha1s = [check_content(document) for document in submission.documents]
    prepared = [repository.prepare(document.content) for document in submission.documents]
    # Staged (durably) before the transaction, not inside it: the fsyncs would hold
    # SQLite's write lock. A content already stored is found by the insert, which keeps the
    # first row: the copy staged here is then dropped.
    staged: list[StagedContent] = []
    try:
        for content in prepared:
            staged.append(repository.stage(content, already_stored=False))
        request = DepositRequest(submission, [s.prepared for s in staged], sha1s, principal)
        if writer is None:
            with transaction(sessions) as session:
                result = file_deposit(session, request)
        else:
            result = writer.submit(request)
    except IntegrityError:
        for item in staged:
            repository.abandoned(item)
        # A deposit with the same identifiers committed between the checks and the write.
        raise SubmissionError(
            "the submission or one of its documents was already received", code="duplicate"
        ) from None
    except BaseException:
        for item in staged:
            repository.abandoned(item)
        raise
    for item in staged:
        repository.committed(item, row_written=item.prepared.storage_key in result.stored_contents)
    return result


_WRITERS: WeakKeyDictionary[
    sessionmaker[Session], GroupCommitter[DepositRequest, DepositResult]
] = WeakKeyDictionary()
_WRITERS_LOCK = threading.Lock()
# How long a group's leader waits for deposits on their way (see `group_commit`): about what
# a deposit's own work takes, so that under load groups gather what is in flight.
LINGER_SECONDS = 0.003


def _writer(sessions: sessionmaker[Session]) -> GroupCommitter[DepositRequest, DepositResult]:
    """One group committer per database (per sessionmaker) in this process."""
    with _WRITERS_LOCK:
        writer = _WRITERS.get(sessions)
        if writer is None:
            writer = GroupCommitter(
                sessions, file_deposit, apply_many=file_deposits, linger=LINGER_SECONDS
            )
            _WRITERS[sessions] = writer
        return writer
