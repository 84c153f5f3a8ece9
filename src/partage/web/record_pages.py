"""The professional's view of a patient's record: find a patient, the record's timeline of
documents across establishments, a document (PDF, CDA R2, text) with its versions, its
content, and a document added from the page.

Thin routes: who is signed in, the form, the response. Whose record and which documents
the reader may see is decided in `record_views` through the one access decision, and every
read is audited there, in the transaction of the page. A record or document the reader may
not see is the same 404 as one that does not exist.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.responses import Response

from partage.access.decision import NotFound
from partage.db import transaction
from partage.documents.actions import do_set_visibility
from partage.documents.cda_render import INLINE_SAFE_TYPES
from partage.documents.deposit import deposit
from partage.documents.repository import ContentCorrupted
from partage.documents.submission import MAX_DOCUMENT_BYTES, Submission, SubmissionError
from partage.web import csrf
from partage.web import record_deposit_views as deposit_views
from partage.web import record_document_views as document_views
from partage.web import record_views as views
from partage.web.deps import get_platform
from partage.web.i18n import N_, gettext
from partage.web.pages import (
    current_path,
    error_page,
    is_htmx,
    render,
    render_fragment,
    request_locale,
    row_id,
    see_other,
)
from partage.web.session import PortalUser, current_user, sign_in_redirect, signed_in

router = APIRouter(prefix=views.RECORD, tags=["record"])

QueryText = Annotated[str | None, Query(max_length=200)]
PageToken = Annotated[str | None, Query(max_length=1000)]
FormText = Annotated[str, Form(max_length=300)]

MSG_ADDED = N_("The document has been added to the record.")
MSG_NOT_ADDED = N_("The document was not added:")
MSG_VISIBILITY_CHANGED = N_("The visibility of the document has been changed.")
MSG_CANNOT_DEPOSIT = N_(
    "Your establishment holds no identity of this patient: you cannot add a document here."
)
# A viewed content is personal data: never cached, never sniffed into something else, and
# sandboxed (no script, no form, no same-origin access) even if it is shown in a frame of
# ours; only our own pages may frame it.
CONTENT_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": (
        "sandbox; default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; "
        "frame-ancestors 'self'"
    ),
}
_EXTENSIONS = {
    "application/pdf": "pdf",
    "text/plain": "txt",
    "text/xml": "xml",
    "application/xml": "xml",
    "application/hl7-cda+xml": "xml",
    "image/png": "png",
    "image/jpeg": "jpg",
    "image/gif": "gif",
}


def _reader(request: Request) -> PortalUser | Response:
    return signed_in(request, current_path(request))


# --- find a patient ------------------------------------------------------------------------


@router.get("")
def find_patient(
    request: Request,
    nom: QueryText = None,
    naissance: QueryText = None,
    ipp: QueryText = None,
    ins: QueryText = None,
) -> Response:
    user = _reader(request)
    if isinstance(user, Response):
        return user
    locale = request_locale(request)
    criteria = views.PatientCriteria(
        name=(nom or "").strip(),
        born=(naissance or "").strip(),
        ipp=(ipp or "").strip(),
        ins=(ins or "").strip(),
    )
    results: list[views.PatientView] = []
    problem: str | None = None
    with transaction(get_platform(request).sessions) as session:
        if not views.is_reader(user.principal):
            raise views.refuse(
                session,
                user.principal,
                action="record.search",
                outcome="denied",
                entity_type="Patient",
                entity_id=None,
                person_id=None,
                reason="not a professional's page",
            )
        if not criteria.is_empty:
            try:
                results, accesses = views.find_patients(session, user.principal, criteria, locale)
            except views.InvalidCriteria as error:
                problem = gettext(locale, str(error))
            else:
                views.audit_search(session, user.principal, criteria, accesses)
    return render(
        request,
        "record/search.html",
        {"criteria": criteria, "results": results, "problem": problem},
        user=user,
        status_code=422 if problem else 200,
    )


# --- the record ----------------------------------------------------------------------------


def _record_page(
    request: Request,
    user: PortalUser,
    person_id: uuid.UUID,
    filters: views.TimelineFilters,
    *,
    notice: str | None = None,
    problem: str | None = None,
    form: deposit_views.DepositForm | None = None,
    status_code: int = 200,
) -> Response:
    locale = request_locale(request)
    # htmx asks for the timeline only, except when it rebuilds a page from its history.
    fragment = is_htmx(request) and request.headers.get("hx-history-restore-request") != "true"
    with transaction(get_platform(request).sessions) as session:
        access = views.open_record(session, user.principal, person_id, action="document.search")
        found = views.timeline(session, access, filters, locale)
        views.audit_listing(session, user.principal, access, found.rows)
        patient = views.patient_view(session, access.person_id, user.principal, locale)
        can_deposit = deposit_views.may_deposit(user.principal, access)
    form = form or deposit_views.DepositForm()
    context: dict[str, Any] = {
        "patient": patient,
        "timeline": found,
        "filters": filters,
        "action": views.record_url(access.person_id),
        "problem_text": gettext(locale, found.problem) if found.problem else None,
    }
    if fragment:
        return render_fragment(request, "record/_timeline.html", context)
    context.update(
        {
            "can_deposit": can_deposit,
            "deposit_action": f"{views.record_url(access.person_id)}/documents",
            "form": form,
            "type_options": form.type_options(locale),
            "notice": gettext(locale, notice) if notice else None,
            "deposit_problem": problem,
        }
    )
    return render(request, "record/record.html", context, user=user, status_code=status_code)


@router.get("/{person_id}")
def record_page(
    person_id: str,
    request: Request,
    type: QueryText = None,
    etablissement: QueryText = None,
    du: QueryText = None,
    au: QueryText = None,
    tout: QueryText = None,
    page: PageToken = None,
    ajoute: QueryText = None,
) -> Response:
    user = _reader(request)
    if isinstance(user, Response):
        return user
    filters = views.TimelineFilters(
        type=(type or "").strip(),
        establishment=(etablissement or "").strip(),
        date_from=(du or "").strip(),
        date_to=(au or "").strip(),
        all_versions=tout == "on",
        page=page or "",
    )
    return _record_page(
        request, user, row_id(person_id), filters, notice=MSG_ADDED if ajoute else None
    )


@router.post("/{person_id}/documents")
def add_document(
    person_id: str,
    request: Request,
    fichier: Annotated[UploadFile | None, File()] = None,
    type: FormText = "",
    titre: FormText = "",
    date: FormText = "",
    invisible_patient: FormText = "",
    invisible_representants: FormText = "",
    csrf_token: FormText = "",
) -> Response:
    """A document added by a professional of an establishment holding an identity of the
    patient: filed under that identity, at once in the record ("portal" channel)."""
    record_id = row_id(person_id)
    user = current_user(request)
    if user is None:
        return sign_in_redirect(request, views.record_url(record_id))
    if not csrf.session_csrf_ok(request, user.csrf_token, csrf_token):
        return error_page(request, "csrf", 403)
    platform = get_platform(request)
    locale = request_locale(request)
    form = deposit_views.DepositForm(
        type=type.strip(),
        title=titre,
        date=date.strip(),
        hidden_from_patient=bool(invisible_patient),
        hidden_from_legal_representatives=bool(invisible_representants),
    )
    # One byte more than accepted is enough to know it is too much.
    data = fichier.file.read(MAX_DOCUMENT_BYTES + 1) if fichier is not None else b""
    problem: str | None = None
    submission: Submission | None = None
    with transaction(platform.sessions) as session:
        access = views.open_record(session, user.principal, record_id, action="document.deposit")
        if not deposit_views.may_deposit(user.principal, access):
            problem = gettext(locale, MSG_CANNOT_DEPOSIT)
        else:
            try:
                submission = deposit_views.portal_submission(
                    session, user.principal, user.display_name, access, form, data
                )
            except views.InvalidCriteria as error:
                problem = gettext(locale, str(error))
    if submission is not None:
        # Outside the read's transaction: the deposit hashes and encrypts first, then
        # writes the registry in a transaction of its own (all or nothing).
        try:
            deposit(
                platform.sessions,
                platform.repository,
                principal=user.principal,
                submission=submission,
            )
        except SubmissionError as error:
            with transaction(platform.sessions) as session:
                deposit_views.refused_deposit(session, user.principal, access, error)
            problem = f"{gettext(locale, MSG_NOT_ADDED)} {error.message}"
    if problem is None:
        return see_other(f"{views.record_url(access.person_id)}?ajoute=1")
    return _record_page(
        request,
        user,
        access.person_id,
        views.TimelineFilters(),
        problem=problem,
        form=form,
        status_code=422,
    )


# --- one document ----------------------------------------------------------------------------


@router.get("/{person_id}/documents/{entry_id}")
def document_page(
    person_id: str, entry_id: str, request: Request, visibilite: QueryText = None
) -> Response:
    user = _reader(request)
    if isinstance(user, Response):
        return user
    locale = request_locale(request)
    platform = get_platform(request)
    with transaction(platform.sessions) as session:
        entry, access = document_views.document_for_reader(
            session, user.principal, row_id(person_id), row_id(entry_id), action="document.read"
        )
        row = views.document_rows(session, access.person_id, [entry], locale)[0]
        try:
            shown = document_views.viewer(session, platform.repository, access, entry, locale)
        except ContentCorrupted:
            shown = document_views.Viewer(
                "download", "", "", problem=document_views.MSG_CONTENT_MISSING
            )
        context = {
            "patient": views.patient_view(session, access.person_id, user.principal, locale),
            "document": row,
            "facts": document_views.metadata(entry, locale, row),
            "versions": document_views.version_rows(session, access, entry, locale),
            "viewer": shown,
            "record_href": views.record_url(access.person_id),
            "visibility": document_views.visibility_form(user.principal, access, entry),
            "notice": gettext(locale, MSG_VISIBILITY_CHANGED) if visibilite else None,
        }
    return render(request, "record/document.html", context, user=user)


@router.post("/{person_id}/documents/{entry_id}/visibilite")
def change_visibility(
    person_id: str,
    entry_id: str,
    request: Request,
    invisible_patient: FormText = "",
    masque_ps: FormText = "",
    invisible_representants: FormText = "",
    csrf_token: FormText = "",
) -> Response:
    """The document's author changes who sees it (PDSm visibility codes): a result held back
    until the consultation, a document masked at the patient's request."""
    record_id, document_id = row_id(person_id), row_id(entry_id)
    user = current_user(request)
    if user is None:
        return sign_in_redirect(request, views.document_url(record_id, document_id))
    if not csrf.session_csrf_ok(request, user.csrf_token, csrf_token):
        return error_page(request, "csrf", 403)
    ticked = {
        "invisible_patient": invisible_patient,
        "masque_ps": masque_ps,
        "invisible_representants": invisible_representants,
    }
    labels = frozenset(
        code for field, code in document_views.VISIBILITY_FIELDS.items() if ticked[field]
    )
    platform = get_platform(request)
    with transaction(platform.sessions) as session:
        # In this record and readable by the caller (404 otherwise), then changed by its
        # author only (404 otherwise, as if it did not exist): each step audited.
        _, access = document_views.document_for_reader(
            session, user.principal, record_id, document_id, action="document.read"
        )
        do_set_visibility(
            session, principal=user.principal, entry_id=document_id, visibility=labels
        )
    return see_other(f"{views.document_url(access.person_id, document_id)}?visibilite=1")


def _content_response(data: bytes, media_type: str, *, inline: bool, name: str) -> Response:
    media_type = media_type.split(";")[0].strip().lower()
    extension = _EXTENSIONS.get(media_type, "bin")
    if media_type not in INLINE_SAFE_TYPES:
        # A type a browser might run (HTML, SVG, XML with a stylesheet…) is only ever a file
        # to save, whatever it declares.
        inline = False
        if media_type not in _EXTENSIONS:
            media_type = "application/octet-stream"
    disposition = "inline" if inline else f'attachment; filename="{name}.{extension}"'
    if media_type.startswith("text/"):
        media_type += "; charset=utf-8"
    return Response(
        data,
        media_type=media_type,
        headers={**CONTENT_HEADERS, "Content-Disposition": disposition},
    )


@router.get("/{person_id}/documents/{entry_id}/contenu")
def document_content(
    person_id: str, entry_id: str, request: Request, telecharger: QueryText = None
) -> Response:
    """The document's bytes: inline when the browser shows the type without running
    anything (a PDF, text, an image), a download otherwise or when asked for."""
    user = _reader(request)
    if isinstance(user, Response):
        return user
    platform = get_platform(request)
    download = bool(telecharger)
    with transaction(platform.sessions) as session:
        entry, _ = document_views.document_for_reader(
            session,
            user.principal,
            row_id(person_id),
            row_id(entry_id),
            action="document.retrieve",
            detail={"download": download},
        )
        try:
            data = document_views.read_content(session, platform.repository, entry)
        except ContentCorrupted:
            data = None
        media_type, name = entry.mime_type, f"document-{entry.id}-v{entry.version}"
    if data is None:
        raise NotFound()
    return _content_response(data, media_type, inline=not download, name=name)


@router.get("/{person_id}/documents/{entry_id}/pieces/{attachment_id}")
def cda_attachment(person_id: str, entry_id: str, attachment_id: str, request: Request) -> Response:
    """An image or file a CDA document embeds: inline only when its (sniffed) type is one a
    browser shows without running anything, a download otherwise."""
    user = _reader(request)
    if isinstance(user, Response):
        return user
    platform = get_platform(request)
    with transaction(platform.sessions) as session:
        entry, _ = document_views.document_for_reader(
            session,
            user.principal,
            row_id(person_id),
            row_id(entry_id),
            action="document.retrieve",
            detail={"attachment": attachment_id[:64]},
        )
        try:
            data = document_views.read_content(session, platform.repository, entry)
        except ContentCorrupted:
            data = None
        name = f"document-{entry.id}-{attachment_id[:64]}"
    attachment = document_views.cda_attachment(data, attachment_id) if data is not None else None
    if attachment is None:
        raise NotFound()
    return _content_response(
        attachment.data, attachment.media_type, inline=attachment.inline_safe, name=name
    )
