"""The professional's view of a patient's record: whose record a page may show, the
patient search and the timeline (one document: `record_document_views`; a deposit from the
portal: `record_deposit_views`).

Every read here goes through the one access decision (`access.decision.decide_record`):
the record's person, then what of it the reader may see, as a query condition for lists
(`documents.service.grant_condition`) and as `grant.admits` for one document. Each read
writes its audit row in the caller's transaction; a refusal is recorded and committed
before `NotFound` is raised, so that it outlives the failed request. A record or a document
the reader may not see answers exactly like one that does not exist.

The values a page shows are built here in the reader's language; templates lay them out.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from babel.dates import format_date
from sqlalchemy import ColumnElement, and_, exists, select
from sqlalchemy.orm import Session

from partage.access.decision import (
    NotFound,
    RecordGrant,
    RecordSubject,
    decide_record,
)
from partage.audit.actions import record
from partage.documents import service
from partage.documents.fhir_search import DEFAULT_SORT, SORTS
from partage.documents.models import Confidentiality, DocumentEntry, DocumentStatus
from partage.documents.submission import (
    LOINC,
)
from partage.identity.ins import InvalidIns, format_ins, normalize_ins
from partage.identity.models import LocalIdentity
from partage.identity.normalize import fold
from partage.search import InvalidSearch, SearchSpec, decode_after, encode_after, run_search
from partage.security.models import Profile
from partage.security.principal import Principal
from partage.security.service import establishments_by_id
from partage.web.i18n import N_, gettext
from partage.web.identity_search_views import parse_birth_date
from partage.web.identity_views import SEX_LABELS

RECORD = "/dossier"
# The territory's time zone: days typed and shown are days there.
PARIS = ZoneInfo("Europe/Paris")
PAGE_SIZE = 20
SEARCH_LIMIT = 30
# Who these pages are for: the professionals who may hold a care relationship.
READER_PROFILES = frozenset(
    {Profile.hospital_physician, Profile.city_physician, Profile.nurse, Profile.pharmacist}
)

# The types a professional may deposit from the portal (LOINC), msgids in English.
DEPOSIT_TYPES: dict[str, str] = {
    "11488-4": N_("Consultation report"),
    "11490-0": N_("Discharge letter"),
    "57833-6": N_("Prescription"),
    "11502-2": N_("Laboratory report"),
    "18748-4": N_("Imaging report"),
    "60591-5": N_("Medical summary"),
}
STATUS_LABELS: dict[str, str] = {
    DocumentStatus.superseded: N_("replaced"),
    DocumentStatus.archived: N_("archived"),
    DocumentStatus.entered_in_error: N_("entered in error"),
}
CONFIDENTIALITY_LABELS: dict[str, str] = {
    Confidentiality.normal: N_("normal"),
    Confidentiality.restricted: N_("restricted"),
    Confidentiality.very_restricted: N_("very restricted"),
}
MSG_NEED_CRITERIA = N_("Enter a family name and a birth date, or an IPP, or an INS.")
MSG_BAD_DATE = N_("Enter the dates as DD/MM/YYYY.")
MSG_BAD_PAGE = N_("This page link is no longer valid: start again from the first page.")
MSG_BAD_INS = N_("This INS is not valid: 15 characters, NIR or NIA and its key.")


def record_url(person_id: uuid.UUID) -> str:
    return f"{RECORD}/{person_id}"


def document_url(person_id: uuid.UUID, entry_id: uuid.UUID) -> str:
    return f"{RECORD}/{person_id}/documents/{entry_id}"


def content_url(person_id: uuid.UUID, entry_id: uuid.UUID, *, download: bool = False) -> str:
    url = f"{document_url(person_id, entry_id)}/contenu"
    return f"{url}?telecharger=1" if download else url


def attachment_url(person_id: uuid.UUID, entry_id: uuid.UUID, attachment_id: str) -> str:
    return f"{document_url(person_id, entry_id)}/pieces/{attachment_id}"


def day_shown(moment: datetime | date | None, locale: str) -> str | None:
    if moment is None:
        return None
    if isinstance(moment, datetime):
        moment = moment.astimezone(PARIS).date() if moment.tzinfo else moment.date()
    return format_date(moment, format="short", locale=locale)


def as_utc(moment: datetime) -> datetime:
    # SQLite gives back naive datetimes; every stored instant is UTC.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# --- whose record, and may the reader see it -------------------------------------------------


@dataclass(frozen=True)
class RecordAccess:
    """The record a page may show: its (surviving) person and what of it the reader sees."""

    subject: RecordSubject
    grant: RecordGrant

    @property
    def person_id(self) -> uuid.UUID:
        return self.subject.person_id

    def condition(self) -> tuple[ColumnElement[bool], ColumnElement[bool]]:
        return service.in_record_of(self.person_id), service.grant_condition(self.grant)


def is_reader(principal: Principal) -> bool:
    return principal.kind == "account" and principal.profile in READER_PROFILES


def refuse(
    session: Session,
    principal: Principal,
    *,
    action: str,
    outcome: str,
    entity_type: str,
    entity_id: str | None,
    person_id: uuid.UUID | None,
    reason: str | None,
) -> NotFound:
    """Record the refusal, commit it (the request fails, the trace stays), and the error."""
    record(
        session,
        actor=principal.actor,
        action=action,
        outcome=outcome,
        entity_type=entity_type,
        entity_id=entity_id,
        person_id=str(person_id) if person_id else None,
        detail={"reason": reason, "channel": "portal"} if reason else {"channel": "portal"},
    )
    session.commit()
    return NotFound()


def _refusal_reason(
    principal: Principal, subject: RecordSubject | None, grant: RecordGrant | None
) -> str | None:
    if not is_reader(principal):
        return "not a professional's page"
    if grant is not None and not grant.decision.allowed:
        return grant.decision.reason
    return "nothing of the record is theirs to see" if subject is not None else None


def open_record(
    session: Session, principal: Principal, person_id: uuid.UUID, *, action: str
) -> RecordAccess:
    """The record, when the decision lets the reader see it; NotFound (audited) otherwise.

    A professional outside the patient's care establishments is allowed by the decision only
    what they wrote themselves: without such a document the record answers as unknown, so
    that nobody learns from these pages who is a patient where."""
    access = service.record_access(session, principal, person_id) if is_reader(principal) else None
    subject, grant = access or (None, None)
    visible = grant is not None and grant.decision.allowed
    if visible and grant is not None and subject is not None and not grant.care_team:
        visible = bool(
            session.scalar(
                select(
                    exists().where(
                        service.in_record_of(subject.person_id), service.grant_condition(grant)
                    )
                )
            )
        )
    if subject is None or grant is None or not visible:
        raise refuse(
            session,
            principal,
            action=action,
            outcome="not_found" if subject is None else "denied",
            entity_type="Patient",
            entity_id=str(person_id),
            person_id=subject.person_id if subject else None,
            reason=_refusal_reason(principal, subject, grant),
        )
    return RecordAccess(subject, grant)


# --- the patient -----------------------------------------------------------------------------


@dataclass(frozen=True)
class PatientView:
    person_id: uuid.UUID
    name: str
    birth_name: str | None  # when the name used is another
    birth_date: str | None
    sex: str
    ins: str | None
    # (establishment, IPP) of the identities the reader's establishment holds.
    local_ids: list[tuple[str, str]]

    @property
    def href(self) -> str:
        return record_url(self.person_id)


def _identity_name(identity: LocalIdentity) -> str:
    family = (identity.used_family_name or identity.birth_family_name).upper()
    return f"{family} {identity.given_names}".strip()


def _best_identity(identities: Sequence[LocalIdentity], own: uuid.UUID | None) -> LocalIdentity:
    """The identity to name the patient by: the reader's establishment's first, then a
    qualified one, then the most recently updated."""
    return min(
        identities,
        key=lambda i: (
            i.establishment_id != own,
            i.status != "QUAL",
            -as_utc(i.updated_at).timestamp(),
        ),
    )


def patient_view(
    session: Session, person_id: uuid.UUID, principal: Principal, locale: str
) -> PatientView:
    identities = list(
        session.scalars(
            select(LocalIdentity).where(LocalIdentity.person_id == person_id, LocalIdentity.active)
        )
    )
    if not identities:
        return PatientView(person_id, "—", None, None, gettext(locale, SEX_LABELS["U"]), None, [])
    best = _best_identity(identities, principal.establishment_id)
    qualified = next((i for i in identities if i.status == "QUAL" and i.ins), None)
    ins = None
    if qualified is not None:
        try:
            ins = format_ins(qualified.ins)
        except InvalidIns:
            ins = qualified.ins
    establishments = establishments_by_id(session, {i.establishment_id for i in identities})
    own = [
        (establishments[i.establishment_id].name, i.local_id)
        for i in identities
        if i.establishment_id == principal.establishment_id
    ]
    return PatientView(
        person_id=person_id,
        name=_identity_name(best),
        birth_name=best.birth_family_name.upper()
        if best.used_family_name and best.used_family_name != best.birth_family_name
        else None,
        birth_date=day_shown(best.birth_date, locale),
        sex=gettext(locale, SEX_LABELS.get(best.sex, SEX_LABELS["U"])),
        ins=ins,
        local_ids=own,
    )


# --- finding a patient -----------------------------------------------------------------------


@dataclass(frozen=True)
class PatientCriteria:
    name: str = ""
    born: str = ""
    ipp: str = ""
    ins: str = ""

    @property
    def is_empty(self) -> bool:
        return not any((self.name, self.born, self.ipp, self.ins))

    def used(self) -> list[str]:
        """Which criteria were given (for the audit trail: kinds, never values)."""
        return [key for key, value in vars(self).items() if value]


class InvalidCriteria(ValueError):
    """A search the reader must correct; the message is a msgid."""


def find_patients(
    session: Session, principal: Principal, criteria: PatientCriteria, locale: str
) -> tuple[list[PatientView], list[RecordAccess]]:
    """The persons matching, among those whose record the decision opens to the reader as a
    member of their care team; at most SEARCH_LIMIT.

    Name and birth date go together (a name alone would list namesakes of the whole
    territory); the IPP is the reader's establishment's. The identities looked at are those
    of the reader's establishment: the decision (asked for each person found) opens a
    record to the professionals of the establishments where the person has an identity, so
    no other identity could lead to a record shown here."""
    conditions: list[ColumnElement[bool]] = []
    if criteria.ipp:
        conditions.append(LocalIdentity.local_id == criteria.ipp.strip()[:64])
    elif criteria.ins:
        ins = normalize_ins(criteria.ins)
        if len(ins) != 15:
            raise InvalidCriteria(MSG_BAD_INS)
        conditions.append(LocalIdentity.ins == ins)
    elif criteria.name and criteria.born:
        folded = fold(criteria.name)[:100]
        born = parse_birth_date(criteria.born)
        if not folded or born is None:
            raise InvalidCriteria(MSG_NEED_CRITERIA)
        conditions.append(LocalIdentity.birth_date == born)
        conditions.append(
            LocalIdentity.family_folded.startswith(folded)
            | LocalIdentity.used_folded.startswith(folded)
        )
    else:
        raise InvalidCriteria(MSG_NEED_CRITERIA)
    if principal.establishment_id is None:
        return [], []
    rows = session.scalars(
        select(LocalIdentity)
        .where(
            LocalIdentity.establishment_id == principal.establishment_id,
            LocalIdentity.active,
            *conditions,
        )
        .order_by(LocalIdentity.family_folded, LocalIdentity.given_folded, LocalIdentity.id)
        .limit(SEARCH_LIMIT)
    )
    caller = service.caller_of(session, principal)
    found: list[PatientView] = []
    accesses: list[RecordAccess] = []
    seen: set[uuid.UUID] = set()
    for identity in list(rows):
        subject = service.subject_of(session, identity.person_id)
        if subject is None or subject.person_id in seen:
            continue
        seen.add(subject.person_id)
        grant = decide_record(caller, subject)
        if grant.decision.allowed and grant.care_team:
            accesses.append(RecordAccess(subject, grant))
            found.append(patient_view(session, subject.person_id, principal, locale))
    return found, accesses


def audit_search(
    session: Session,
    principal: Principal,
    criteria: PatientCriteria,
    accesses: Sequence[RecordAccess],
) -> None:
    """One row per person shown (so each patient's access history has it), or one without
    a person when nothing was found."""
    detail: dict[str, Any] = {"criteria": criteria.used(), "channel": "portal"}
    shown: Sequence[RecordAccess | None] = accesses or [None]
    for access in shown:
        record(
            session,
            actor=principal.actor,
            action="record.search",
            entity_type="Patient",
            entity_id=str(access.person_id) if access else None,
            person_id=str(access.person_id) if access else None,
            basis=access.grant.decision.basis_code if access else None,
            detail=detail,
        )


# --- the timeline ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Option:
    value: str
    label: str
    selected: bool


@dataclass
class TimelineFilters:
    type: str = ""
    establishment: str = ""
    date_from: str = ""
    date_to: str = ""
    all_versions: bool = False
    page: str = ""

    def items(self, **changes: str | None) -> list[tuple[str, str]]:
        values = {
            "type": self.type,
            "etablissement": self.establishment,
            "du": self.date_from,
            "au": self.date_to,
            "tout": "on" if self.all_versions else "",
            "page": self.page,
        }
        values.update({k: v or "" for k, v in changes.items()})
        return [(k, v) for k, v in values.items() if v]

    def url(self, person_id: uuid.UUID, **changes: str | None) -> str:
        query = urlencode(self.items(**changes))
        return record_url(person_id) + (f"?{query}" if query else "")

    @property
    def is_filtered(self) -> bool:
        return bool(self.type or self.establishment or self.date_from or self.date_to)


@dataclass(frozen=True)
class DocumentRow:
    id: uuid.UUID
    href: str
    date: str | None
    type: str
    title: str
    author: str | None
    establishment: str | None
    status: str
    status_label: str | None
    confidentiality: str | None
    version: int
    mime_type: str


@dataclass
class Timeline:
    rows: list[DocumentRow]
    next_url: str | None
    first_url: str | None
    types: list[Option]
    establishments: list[Option]
    problem: str | None = None
    filters: TimelineFilters = field(default_factory=TimelineFilters)


def type_label(entry: DocumentEntry, locale: str) -> str:
    known = DEPOSIT_TYPES.get(entry.type_code) if entry.type_system == LOINC else None
    if known is not None:
        return gettext(locale, known)
    return entry.type_display or entry.type_code


def document_rows(
    session: Session, person_id: uuid.UUID, entries: Sequence[DocumentEntry], locale: str
) -> list[DocumentRow]:
    establishments = establishments_by_id(
        session, {e.establishment_id for e in entries if e.establishment_id}
    )
    rows = []
    for entry in entries:
        status = DocumentStatus(entry.status)
        where = establishments.get(entry.establishment_id) if entry.establishment_id else None
        rows.append(
            DocumentRow(
                id=entry.id,
                href=document_url(person_id, entry.id),
                date=day_shown(as_utc(entry.creation_time), locale),
                type=type_label(entry, locale),
                title=entry.title or type_label(entry, locale),
                author=entry.author_label,
                establishment=where.name if where else None,
                status=status.value,
                status_label=gettext(locale, STATUS_LABELS[status])
                if status in STATUS_LABELS
                else None,
                confidentiality=gettext(locale, CONFIDENTIALITY_LABELS[entry.confidentiality])
                if entry.confidentiality != Confidentiality.normal
                and entry.confidentiality in CONFIDENTIALITY_LABELS
                else None,
                version=entry.version,
                mime_type=entry.mime_type,
            )
        )
    return rows


def _date_bound(text: str, *, end: bool) -> datetime | None:
    """A day typed by the reader as the instant it starts (or the next one starts), in the
    territory's time zone; None when empty; InvalidCriteria when not a date."""
    if not text:
        return None
    day = parse_birth_date(text)
    if day is None:
        raise InvalidCriteria(MSG_BAD_DATE)
    if end:
        day = date.fromordinal(day.toordinal() + 1)
    return datetime.combine(day, time.min).replace(tzinfo=PARIS).astimezone(UTC)


def _filter_options(
    session: Session, access: RecordAccess, filters: TimelineFilters, locale: str
) -> tuple[list[Option], list[Option]]:
    """The types and establishments of what the reader may see of the record."""
    visible = access.condition()
    types = session.execute(
        select(DocumentEntry.type_system, DocumentEntry.type_code, DocumentEntry.type_display)
        .where(*visible)
        .distinct()
    ).all()
    labels: dict[str, str] = {}
    for system, code, display in types:
        known = DEPOSIT_TYPES.get(code) if system == LOINC else None
        labels.setdefault(code, gettext(locale, known) if known else display or code)
    type_options = [
        Option(code, label, code == filters.type)
        for code, label in sorted(labels.items(), key=lambda item: item[1].casefold())
    ]
    ids = set(session.scalars(select(DocumentEntry.establishment_id).where(*visible).distinct()))
    establishments = establishments_by_id(session, {i for i in ids if i is not None})
    establishment_options = [
        Option(str(e.id), e.name, str(e.id) == filters.establishment)
        for e in sorted(establishments.values(), key=lambda e: e.name.casefold())
    ]
    return type_options, establishment_options


def timeline(
    session: Session, access: RecordAccess, filters: TimelineFilters, locale: str
) -> Timeline:
    """The documents the reader may see, newest first, a page at a time (keyset: a page
    stays the same whatever is deposited meanwhile)."""
    types, establishments = _filter_options(session, access, filters, locale)
    result = Timeline([], None, None, types, establishments, filters=filters)
    conditions: list[ColumnElement[bool]] = list(access.condition())
    if not filters.all_versions:
        conditions.append(DocumentEntry.status == DocumentStatus.current.value)
    if filters.type:
        conditions.append(DocumentEntry.type_code == filters.type[:64])
    if filters.establishment:
        try:
            conditions.append(DocumentEntry.establishment_id == uuid.UUID(filters.establishment))
        except ValueError:
            conditions.append(DocumentEntry.id.is_(None))  # no such establishment: nothing
    try:
        start = _date_bound(filters.date_from, end=False)
        end = _date_bound(filters.date_to, end=True)
    except InvalidCriteria as error:
        result.problem = str(error)
        return result
    if start is not None:
        conditions.append(DocumentEntry.creation_time >= start)
    if end is not None:
        conditions.append(DocumentEntry.creation_time < end)
    spec: SearchSpec[DocumentEntry] = SearchSpec(
        model=DocumentEntry,
        parameters={},
        order=SORTS[DEFAULT_SORT],
        always=(and_(*conditions),),
    )
    try:
        page = run_search(
            session,
            spec,
            criteria=[],
            count=PAGE_SIZE,
            after=decode_after(filters.page) if filters.page else None,
        )
    except InvalidSearch:
        result.problem = MSG_BAD_PAGE
        return result
    result.rows = document_rows(session, access.person_id, page.items, locale)
    if page.next_after is not None:
        result.next_url = filters.url(access.person_id, page=encode_after(page.next_after))
    if filters.page:
        result.first_url = filters.url(access.person_id, page=None)
    return result


def audit_listing(
    session: Session, principal: Principal, access: RecordAccess, rows: Sequence[DocumentRow]
) -> None:
    record(
        session,
        actor=principal.actor,
        action="document.search",
        entity_type="DocumentReference",
        person_id=str(access.person_id),
        basis=access.grant.decision.basis_code,
        detail={"channel": "portal", "documents": [str(r.id) for r in rows]},
    )
