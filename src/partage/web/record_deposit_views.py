"""A document added to a record from the portal, by a professional whose establishment
holds an identity of the patient: the form, its checks, the submission.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, time

from sqlalchemy.orm import Session

from partage.access.decision import (
    decide_deposit,
)
from partage.documents import service
from partage.documents.filing_writes import record_refused_deposit
from partage.documents.submission import (
    INVISIBLE_PATIENT,
    INVISIBLE_REPRESENTANTS_LEGAUX,
    LOINC,
    MAX_DOCUMENT_BYTES,
    AuthorRef,
    Coding,
    NewDocument,
    PatientRef,
    Submission,
    SubmissionError,
)
from partage.security.principal import Principal
from partage.web.i18n import N_, gettext
from partage.web.identity_search_views import parse_birth_date
from partage.web.record_views import (
    DEPOSIT_TYPES,
    PARIS,
    InvalidCriteria,
    Option,
    RecordAccess,
)


def may_deposit(principal: Principal, access: RecordAccess) -> bool:
    """The reader's establishment holds an identity of the patient, and the decision lets
    its professionals file under it."""
    establishment = principal.establishment_id
    if establishment is None or establishment not in access.subject.establishment_ids:
        return False
    return decide_deposit(principal, identity_establishment_id=establishment).allowed


@dataclass
class DepositForm:
    type: str = ""
    title: str = ""
    date: str = ""
    # Visibility at deposit (PDSm codes): a result to be announced at a consultation first,
    # or a document the patient's legal representatives must not see.
    hidden_from_patient: bool = False
    hidden_from_legal_representatives: bool = False

    @property
    def visibility(self) -> frozenset[str]:
        codes = set()
        if self.hidden_from_patient:
            codes.add(INVISIBLE_PATIENT)
        if self.hidden_from_legal_representatives:
            codes.add(INVISIBLE_REPRESENTANTS_LEGAUX)
        return frozenset(codes)

    def type_options(self, locale: str) -> list[Option]:
        return [
            Option(code, gettext(locale, label), code == self.type)
            for code, label in DEPOSIT_TYPES.items()
        ]


MSG_NO_FILE = N_("Choose the file to add.")
MSG_FILE_KIND = N_("The file must be a PDF, a CDA R2 document (XML) or plain text (UTF-8).")
MSG_FILE_TOO_LARGE = N_("The file is too large (64 MB at most).")
MSG_TYPE = N_("Choose the type of the document.")
MSG_TITLE = N_("Give the document a title.")
MSG_DATE = N_("Enter the date of the document as DD/MM/YYYY, not in the future.")


def sniff_upload(data: bytes) -> str | None:
    """The content type of an uploaded file, from its bytes (what the browser declares is
    not trusted): PDF, XML (a CDA document, checked by the deposit), or UTF-8 text."""
    if data.startswith(b"%PDF-"):
        return "application/pdf"
    head = data[:200].lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith(b"<"):
        return "text/xml"
    if b"\x00" in data:
        return None
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return "text/plain"


def portal_submission(
    session: Session,
    principal: Principal,
    display_name: str,
    access: RecordAccess,
    form: DepositForm,
    data: bytes,
) -> Submission:
    """The deposit as the documents domain takes it; InvalidCriteria (a msgid) for what the
    form must correct first."""
    if not data:
        raise InvalidCriteria(MSG_NO_FILE)
    if len(data) > MAX_DOCUMENT_BYTES:
        raise InvalidCriteria(MSG_FILE_TOO_LARGE)
    mime = sniff_upload(data)
    if mime is None:
        raise InvalidCriteria(MSG_FILE_KIND)
    if form.type not in DEPOSIT_TYPES:
        raise InvalidCriteria(MSG_TYPE)
    title = " ".join(form.title.split())[:300]
    if not title and mime != "text/xml":
        raise InvalidCriteria(MSG_TITLE)
    created: datetime | None = None
    if form.date.strip():
        day = parse_birth_date(form.date)
        if day is None or day > datetime.now(PARIS).date():
            raise InvalidCriteria(MSG_DATE)
        # The day the professional gave, at noon in the territory (a day, not an instant).
        created = datetime.combine(day, time(12)).replace(tzinfo=PARIS)
    caller = service.caller_of(session, principal)
    author = (
        AuthorRef(practitioner_id=caller.practitioner_id)
        if caller.practitioner_id is not None
        else AuthorRef(label=display_name)
    )
    # OIDs derived from UUIDs (ISO 9834-8, "2.25."): the portal has no OID root of its own.
    unique_id = f"2.25.{uuid.uuid4().int}"
    return Submission(
        unique_id=f"2.25.{uuid.uuid4().int}",
        # The source is the depositing establishment (the same OID for all its deposits).
        source_id=f"2.25.{principal.establishment_id.int if principal.establishment_id else 0}",
        patient=PatientRef(person_id=access.person_id),
        channel="portal",
        author_label=display_name,
        documents=[
            NewDocument(
                unique_id=unique_id,
                content=data,
                mime_type=mime,
                type=Coding(LOINC, form.type, DEPOSIT_TYPES[form.type]),
                title=title or None,
                creation_time=created,
                authors=[author],
                visibility=form.visibility,
                where="document",
            )
        ],
    )


def refused_deposit(
    session: Session, principal: Principal, access: RecordAccess, error: SubmissionError
) -> None:
    record_refused_deposit(session, principal, error, person_id=access.person_id, channel="portal")
