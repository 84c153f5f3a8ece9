"""One document of a record for its reader: the entry admitted by the access decision, the
viewer (PDF, CDA R2 rendered from a whitelist, text), its metadata and its versions.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from partage.access.decision import Action, decide
from partage.documents import service
from partage.documents.cda import InvalidCda
from partage.documents.cda_render import Attachment, render_cda
from partage.documents.models import DocumentEntry, DocumentStatus
from partage.documents.reading import read_entry
from partage.documents.repository import Repository
from partage.documents.submission import (
    CDA_MIME_TYPES,
    INVISIBLE_PATIENT,
    INVISIBLE_REPRESENTANTS_LEGAUX,
    MASQUE_PS,
)
from partage.security.principal import Principal
from partage.web.directory_views import date_time
from partage.web.i18n import N_, gettext
from partage.web.record_views import (
    CONFIDENTIALITY_LABELS,
    STATUS_LABELS,
    DocumentRow,
    RecordAccess,
    as_utc,
    attachment_url,
    content_url,
    day_shown,
    document_url,
    is_reader,
)


def document_for_reader(
    session: Session,
    principal: Principal,
    person_id: uuid.UUID,
    entry_id: uuid.UUID,
    *,
    action: str,
    detail: dict[str, Any] | None = None,
) -> tuple[DocumentEntry, RecordAccess]:
    """The entry, in this person's record and admitted by the decision for the reader, its
    read audited; NotFound (audited) otherwise, whichever of these failed."""
    entry = service.get_entry(session, entry_id) if is_reader(principal) else None
    entry, subject, grant = read_entry(
        session,
        principal,
        entry,
        action=action,
        entity_id=str(entry_id),
        person_id=person_id,
        channel="portal",
        detail=detail,
    )
    return entry, RecordAccess(subject, grant)


@dataclass(frozen=True)
class VersionRow:
    version: int
    href: str
    date: str | None
    status_label: str | None
    current: bool  # the one shown


def version_rows(
    session: Session, access: RecordAccess, entry: DocumentEntry, locale: str
) -> list[VersionRow]:
    """Every version of the document the reader may see, newest first."""
    rows = []
    for version in reversed(service.versions(session, entry.lineage_id)):
        if not access.grant.admits(service.facts(version)):
            continue
        status = DocumentStatus(version.status)
        rows.append(
            VersionRow(
                version=version.version,
                href=document_url(access.person_id, version.id),
                date=date_time(as_utc(version.deposited_at), locale),
                status_label=gettext(locale, STATUS_LABELS[status])
                if status in STATUS_LABELS
                else None,
                current=version.id == entry.id,
            )
        )
    return rows


@dataclass
class Viewer:
    """How the page shows the document: `kind` is pdf, cda, text, image or download."""

    kind: str
    content_url: str
    download_url: str
    html: str | None = None  # CDA: generated from a whitelist by `render_cda` only
    text: str | None = None
    problem: str | None = None


MSG_CDA_UNREADABLE = N_(
    "This CDA document could not be read; it can still be downloaded and opened elsewhere."
)
MSG_CONTENT_MISSING = N_("The content of this document is not available.")


def read_content(session: Session, repository: Repository, entry: DocumentEntry) -> bytes | None:
    content = service.content_of(session, entry)
    return repository.read(content) if content is not None else None


def viewer(
    session: Session,
    repository: Repository,
    access: RecordAccess,
    entry: DocumentEntry,
    locale: str,
) -> Viewer:
    person_id = access.person_id
    shown = Viewer(
        kind="download",
        content_url=content_url(person_id, entry.id),
        download_url=content_url(person_id, entry.id, download=True),
    )
    mime = entry.mime_type.split(";")[0].strip().lower()
    if mime == "application/pdf":
        shown.kind = "pdf"
    elif mime in ("image/png", "image/jpeg", "image/gif"):
        shown.kind = "image"
    elif mime in CDA_MIME_TYPES or mime == "text/plain":
        data = read_content(session, repository, entry)
        if data is None:
            shown.problem = MSG_CONTENT_MISSING
        elif mime == "text/plain":
            shown.kind, shown.text = "text", data.decode("utf-8", errors="replace")
        else:
            try:
                rendered = render_cda(
                    data,
                    locale=locale,
                    attachment_url=lambda a: attachment_url(person_id, entry.id, a),
                )
            except InvalidCda:
                shown.problem = MSG_CDA_UNREADABLE
            else:
                # The page's own <h1> is the document's title: the rendering's heading
                # becomes a paragraph, so the page keeps one first-level heading. Text in
                # the rendering is escaped, so these tags can only be the renderer's own.
                markup = rendered.html.replace('<h1 class="cda-title">', '<p class="cda-title">', 1)
                if markup != rendered.html:
                    markup = markup.replace("</h1>", "</p>", 1)
                shown.kind, shown.html = "cda", markup
    return shown


def cda_attachment(data: bytes, attachment_id: str) -> Attachment | None:
    try:
        rendered = render_cda(data)
    except InvalidCda:
        return None
    return next((a for a in rendered.attachments if a.id == attachment_id), None)


@dataclass(frozen=True)
class Fact:
    label: str
    value: str


def metadata(entry: DocumentEntry, locale: str, row: DocumentRow) -> list[Fact]:
    """The metadata panel: what the registry knows of the document, in the reader's words."""
    facts = [
        Fact(N_("Type"), row.type),
        Fact(N_("Date of the document"), row.date or "—"),
    ]
    if entry.service_start is not None:
        span = day_shown(as_utc(entry.service_start), locale) or ""
        if entry.service_end is not None and entry.service_end != entry.service_start:
            span = f"{span} – {day_shown(as_utc(entry.service_end), locale)}"
        facts.append(Fact(N_("Date of care"), span))
    facts.append(Fact(N_("Author"), row.author or "—"))
    facts.append(Fact(N_("Establishment"), row.establishment or "—"))
    if entry.practice_setting_display:
        facts.append(Fact(N_("Practice setting"), entry.practice_setting_display))
    facts.append(Fact(N_("Deposited on"), date_time(as_utc(entry.deposited_at), locale) or "—"))
    facts.append(Fact(N_("Version"), str(entry.version)))
    facts.append(
        Fact(
            N_("Confidentiality"),
            gettext(locale, CONFIDENTIALITY_LABELS.get(entry.confidentiality, N_("normal"))),
        )
    )
    facts.append(Fact(N_("Format"), entry.mime_type))
    return facts


@dataclass(frozen=True)
class VisibilityForm:
    """The visibility labels of a document, which its author may change from its page."""

    action: str
    hidden_from_patient: bool
    masked_from_professionals: bool
    hidden_from_legal_representatives: bool


# The form's fields and the PDSm visibility codes they stand for.
VISIBILITY_FIELDS = {
    "invisible_patient": INVISIBLE_PATIENT,
    "masque_ps": MASQUE_PS,
    "invisible_representants": INVISIBLE_REPRESENTANTS_LEGAUX,
}


def visibility_form(
    principal: Principal, access: RecordAccess, entry: DocumentEntry
) -> VisibilityForm | None:
    """The form, for the document's author (who may deposit) only: the same rule as the
    change itself (`actions.entry_for_author`)."""
    if entry.status == DocumentStatus.entered_in_error.value:
        return None
    if not decide(principal, Action.document_deposit).allowed:
        return None
    if not access.grant.is_author_of(service.facts(entry)):
        return None
    return VisibilityForm(
        action=f"{document_url(access.person_id, entry.id)}/visibilite",
        hidden_from_patient=entry.invisible_patient,
        masked_from_professionals=entry.masked_ps,
        hidden_from_legal_representatives=entry.invisible_legal_reps,
    )
