"""The documents as FHIR: MHD ITI-65 (provide: a transaction Bundle posted to the base),
ITI-67 (find: DocumentReference search and read), ITI-68 (retrieve: Binary, with byte
ranges), and the author's changes (status, visibility labels) by PUT.

Every read is decided person by person (`access.decision.decide_record`): the record's
person, then what of it the caller may see. A document the caller may not see answers as one
that does not exist. Each read, search and deposit writes its audit row in the transaction
that decided it.
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from dataclasses import replace
from functools import partial
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from sqlalchemy import Connection, select
from sqlalchemy.orm import Session

from partage.access.decision import (
    Action,
    NotFound,
    decide,
    require,
)
from partage.audit.actions import record
from partage.db import transaction
from partage.documents import service
from partage.documents.actions import do_change_status, do_set_visibility
from partage.documents.deposit import deposit
from partage.documents.fhir_render import ARCHIVED_TAG, document_references
from partage.documents.fhir_search import DEFAULT_SORT, DOCUMENTS, PATIENT_PARAMETERS, SORTS
from partage.documents.filing import DeferredCaller
from partage.documents.filing_writes import record_refused_deposit
from partage.documents.mhd import parse_provide_bundle, security_labels, transaction_response
from partage.documents.models import DocumentEntry, DocumentStatus
from partage.documents.reading import read_entry
from partage.documents.repository import ContentCorrupted
from partage.documents.submission import (
    SubmissionError,
)
from partage.identity.fhir_pix import persons_by_identifier, survivor_person
from partage.identity.models import Person
from partage.interop.fhir.api import check_scopes, searchset
from partage.interop.fhir.outcome import FHIR_JSON, FhirError, fhir_response
from partage.interop.fhir.query import parse_search
from partage.interop.fhir.resources import Audit, ResourceType
from partage.platform import Platform
from partage.search import Criterion, InvalidSearch, run_search, split_token
from partage.security.bearer import TokenClaims, bearer_token
from partage.security.deps import (
    BearerPrincipal,
    authenticate,
    confirm_claims,
    confirm_claims_on,
    token_claims,
)
from partage.security.models import Establishment
from partage.security.principal import Principal
from partage.web.deps import get_platform

router = APIRouter(prefix="/fhir", tags=["fhir"])
# A provide Bundle carries its documents in base64: the largest document accepted, and more.
MAX_PROVIDE_BODY = 96 * 1024 * 1024
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")

DOCUMENT_REFERENCE = ResourceType(
    name="DocumentReference",
    profile="https://profiles.ihe.net/ITI/MHD/StructureDefinition/IHE.MHD.Comprehensive.DocumentReference",
    spec=DOCUMENTS,
    read=service.get_entry,
    render=lambda session, rows: document_references(session, rows, base=""),
    action=Action.document_read,
    audit=Audit(action="document", person_of=lambda entry: None),
)


def _base(platform: Platform) -> str:
    return f"{platform.settings.issuer}/fhir"


# --- ITI-65: provide ------------------------------------------------------------------------


@router.post(
    "",
    include_in_schema=True,
    openapi_extra={"security": [{"HTTPBearer": []}]},
    responses={401: {"description": "missing, invalid or revoked bearer token"}},
)
@router.post("/", include_in_schema=False)
async def provide(request: Request) -> Response:
    """A transaction Bundle: ITI-65, the documents of one submission set, all or nothing.

    The token is checked in the worker thread that files the deposit, not by a dependency
    (a thread of its own per request): this is the busiest write of the platform."""
    platform = get_platform(request)
    authorization = request.headers.get("authorization")
    if bearer_token(authorization) is None:
        authenticate(platform, authorization)  # the 401, before reading any body
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in (FHIR_JSON, "application/json"):
        raise FhirError(415, "send the Bundle as application/fhir+json")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_PROVIDE_BODY:
        raise FhirError(413, "the Bundle is too large", code="too-costly")
    raw = await request.body()
    if len(raw) > MAX_PROVIDE_BODY:
        raise FhirError(413, "the Bundle is too large", code="too-costly")
    return await run_in_threadpool(_provide, platform, authorization, raw)


def _provide(platform: Platform, authorization: str | None, raw: bytes) -> Response:
    # The signature here; whether the token still holds, with the deposit's other reads in
    # the transaction that files it (once for all the deposits of a group).
    claims = token_claims(platform, authorization)
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        confirm_claims(platform, claims)  # a revoked token hears 401, not what is wrong
        raise FhirError(400, "the body is not JSON", code="structure") from None
    base = _base(platform)
    try:
        submission, urls = parse_provide_bundle(body, base=base)
        result = deposit(
            platform.sessions,
            platform.repository,
            principal=DeferredCaller(claims, partial(_depositor, claims)),
            submission=submission,
            grouped=True,
        )
    except SubmissionError as error:
        _refused(platform, confirm_claims(platform, claims), error)
        status = 409 if error.code == "duplicate" else 422 if error.code == "not-found" else 400
        raise FhirError(status, error.message, code=error.code, expression=error.where) from None
    except _MayNotDeposit as refused:
        with transaction(platform.sessions) as session:
            require(
                session, refused.principal, Action.document_deposit, entity_type="DocumentReference"
            )
        raise  # not reached: `require` raised the denial it recorded
    return fhir_response(transaction_response(body, result, urls, base=base))


class _MayNotDeposit(Exception):
    """The caller may not deposit at all: its denial is recorded in a transaction of its own,
    outside the group filing the others."""

    def __init__(self, principal: Principal) -> None:
        super().__init__("may not deposit")
        self.principal = principal


def _depositor(claims: TokenClaims, connection: Connection) -> Principal:
    """The depositor, confirmed in the filing transaction: token still valid (401), scopes
    (403), allowed to deposit at all (denial recorded)."""
    principal = confirm_claims_on(connection, claims)
    check_scopes(principal, "DocumentReference", "c")
    if not decide(principal, Action.document_deposit).allowed:
        raise _MayNotDeposit(principal)
    return principal


def _refused(platform: Platform, principal: Principal, error: SubmissionError) -> None:
    with transaction(platform.sessions) as session:
        record_refused_deposit(session, principal, error)


# --- ITI-67: find ---------------------------------------------------------------------------


@router.get("/DocumentReference")
def search_documents(request: Request, principal: BearerPrincipal) -> Response:
    return _search(request, principal, list(request.query_params.multi_items()))


@router.post("/DocumentReference/_search")
async def search_documents_by_post(request: Request, principal: BearerPrincipal) -> Response:
    form = await request.form()
    items = list(request.query_params.multi_items())
    items += [(k, v) for k, v in form.multi_items() if isinstance(v, str)]
    return await run_in_threadpool(_search, request, principal, items)


def _patient_person(session: Session, criteria: list[Criterion], base: str) -> uuid.UUID | None:
    """The one person the search is about; None when no such person is known."""
    given = [c for c in criteria if c.name in PATIENT_PARAMETERS]
    if len(given) != 1 or len(given[0].values) != 1:
        raise FhirError(
            400,
            "a DocumentReference search names one patient: patient=Patient/<id> or "
            "patient.identifier=system|value",
            code="required",
            expression="patient",
        )
    criterion, value = given[0], given[0].values[0]
    if criterion.name == "patient":
        tail = value.rsplit("Patient/", 1)[-1]
        try:
            person_id = uuid.UUID(tail)
        except ValueError:
            raise FhirError(
                400, f"'{value}' is not a Patient reference", expression="patient"
            ) from None
        person = survivor_person(session, session.get(Person, person_id))
        return person.id if person is not None else None
    system, code = split_token(value)
    if not system or not code:
        raise FhirError(400, "patient.identifier is system|value", expression="patient.identifier")
    domains = {f"urn:oid:{e.patient_id_oid}": e for e in session.scalars(select(Establishment))}
    found = persons_by_identifier(session, system, code, domains, base) or []
    survivors = {p.id for p in (survivor_person(session, f) for f in found) if p is not None}
    return next(iter(survivors)) if len(survivors) == 1 else None


def _search(request: Request, principal: Principal, items: list[tuple[str, str]]) -> Response:
    platform = get_platform(request)
    check_scopes(principal, "DocumentReference", "s")
    sort = DEFAULT_SORT
    kept: list[tuple[str, str]] = []
    for name, value in items:
        if name == "_sort":
            if value not in SORTS:
                raise FhirError(
                    400,
                    f"_sort supports {', '.join(sorted(SORTS))}",
                    code="not-supported",
                    expression="_sort",
                )
            sort = value
        else:
            kept.append((name, value))
    lenient = "handling=lenient" in request.headers.get("prefer", "").replace(" ", "")
    query = parse_search(DOCUMENT_REFERENCE, kept, lenient=lenient)
    if sort != DEFAULT_SORT:
        query.echoed.append(("_sort", sort))
    base = _base(platform)
    with transaction(platform.sessions) as session:
        require(session, principal, Action.document_read, entity_type="DocumentReference")
        person_id = _patient_person(session, query.criteria, base)
        subject, grant = service.record_access(session, principal, person_id) or (None, None)
        rows: list[DocumentEntry] = []
        next_after, total = None, None
        if subject is not None and grant is not None and grant.decision.allowed:
            spec = replace(
                DOCUMENTS,
                always=(service.in_record_of(subject.person_id), service.grant_condition(grant)),
                order=SORTS[sort],
            )
            try:
                page = run_search(
                    session,
                    spec,
                    criteria=[c for c in query.criteria if c.name not in PATIENT_PARAMETERS],
                    count=query.count,
                    after=query.after,
                    with_total=query.with_total,
                )
            except InvalidSearch as error:
                raise FhirError(400, str(error)) from None
            rows, next_after, total = page.items, page.next_after, page.total
        elif query.with_total:
            total = 0
        matches = document_references(session, rows, base=base)
        record(
            session,
            actor=principal.actor,
            action="document.search",
            outcome="success" if grant is not None and grant.decision.allowed else "denied",
            entity_type="DocumentReference",
            person_id=str(subject.person_id) if subject is not None else None,
            basis=grant.decision.basis_code if grant is not None else None,
            detail={
                "parameters": sorted({c.name for c in query.criteria}),
                "documents": [str(r.id) for r in rows],
                "next_page": query.after is not None,
                **(
                    {"reason": grant.decision.reason}
                    if grant and not grant.decision.allowed
                    else {}
                ),
            },
        )
    bundle = searchset(
        base,
        "DocumentReference",
        query,
        matches=matches,
        included=[],
        next_after=next_after,
        total=total,
    )
    return fhir_response(bundle)


def _entry_for_reader(
    session: Session, principal: Principal, entry_id: str, *, action: str
) -> DocumentEntry:
    """The entry, once the decision admits it for the caller; NotFound (audited) otherwise."""
    require(session, principal, Action.document_read, entity_type="DocumentReference")
    try:
        entry = service.get_entry(session, uuid.UUID(entry_id))
    except ValueError:
        entry = None
    entry, _, _ = read_entry(session, principal, entry, action=action, entity_id=entry_id[:128])
    return entry


@router.get("/DocumentReference/{entry_id}")
def read_document(entry_id: str, request: Request, principal: BearerPrincipal) -> Response:
    platform = get_platform(request)
    check_scopes(principal, "DocumentReference", "r")
    with transaction(platform.sessions) as session:
        entry = _entry_for_reader(session, principal, entry_id, action="document.read")
        rendered = document_references(session, [entry], base=_base(platform))[0]
    return fhir_response(
        rendered, headers={"ETag": f'W/"{entry.version}-{entry.updated_at.timestamp()}"'}
    )


# --- ITI-68: retrieve -----------------------------------------------------------------------


@router.get("/Binary/{entry_id}")
def retrieve(entry_id: str, request: Request, principal: BearerPrincipal) -> Response:
    """The document's bytes (or a FHIR Binary when asked for FHIR JSON); one byte range."""
    platform = get_platform(request)
    check_scopes(principal, "Binary", "r")
    range_header = request.headers.get("range")
    with transaction(platform.sessions) as session:
        entry = _entry_for_reader(session, principal, entry_id, action="document.retrieve")
        content = service.content_of(session, entry)
        session.expunge_all()
    if content is None:
        raise FhirError(404, f"Binary/{entry_id} is not known", code="not-found")
    headers = {
        "Accept-Ranges": "bytes",
        "Cache-Control": "no-store",
        "Content-Disposition": "attachment",
    }
    try:
        if range_header:
            start, end = _byte_range(range_header, entry.size)
            data = platform.repository.read_range(content, start, end + 1)
            headers["Content-Range"] = f"bytes {start}-{end}/{entry.size}"
            return Response(data, status_code=206, media_type=entry.mime_type, headers=headers)
        data = platform.repository.read(content)
    except ContentCorrupted:
        raise FhirError(
            500, "the stored content failed its integrity check", code="exception"
        ) from None
    accept = request.headers.get("accept", "")
    if FHIR_JSON in accept and entry.mime_type != FHIR_JSON:
        binary = {
            "resourceType": "Binary",
            "id": str(entry.id),
            "contentType": entry.mime_type,
            "data": base64.b64encode(data).decode(),
        }
        return fhir_response(binary, headers={"Cache-Control": "no-store"})
    return Response(data, media_type=entry.mime_type, headers=headers)


def _byte_range(header: str, size: int) -> tuple[int, int]:
    """One `bytes=a-b`, `bytes=a-` or `bytes=-n` range, as [start, end] inclusive."""
    match = _RANGE.match(header.strip())
    unsatisfiable = FhirError(416, f"the range {header!r} is not satisfiable (size {size})")
    if match is None or match.group(1) == match.group(2) == "":
        raise unsatisfiable
    first, last = match.group(1), match.group(2)
    if first == "":
        length = int(last)
        if length == 0:
            raise unsatisfiable
        return max(0, size - length), size - 1
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or end < start:
        raise unsatisfiable
    return start, end


# --- the author's changes -----------------------------------------------------------------


@router.put("/DocumentReference/{entry_id}")
async def update_document(entry_id: str, request: Request, principal: BearerPrincipal) -> Response:
    """The depositor changes the status (entered-in-error, archived, current again) or the
    visibility labels; anything else is a new version (ITI-65 with relatesTo replaces)."""
    platform = get_platform(request)
    raw = await request.body()
    if len(raw) > 1_000_000:
        raise FhirError(413, "the resource is too large", code="too-costly")
    return await run_in_threadpool(_update, platform, principal, entry_id, raw)


def _update(platform: Platform, principal: Principal, entry_id: str, raw: bytes) -> Response:
    check_scopes(principal, "DocumentReference", "u")
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        raise FhirError(400, "the body is not JSON", code="structure") from None
    if not isinstance(body, dict) or body.get("resourceType") != "DocumentReference":
        raise FhirError(400, "the body is not a DocumentReference", code="structure")
    if body.get("id") != entry_id:
        raise FhirError(400, "the resource's id is not the one in the URL", expression="id")
    status_value = body.get("status")
    if not isinstance(status_value, str) or status_value not in (
        "current",
        "entered-in-error",
        "superseded",
    ):
        raise FhirError(400, "status is current or entered-in-error", expression="status")
    meta = body.get("meta") or {}
    tags = meta.get("tag") if isinstance(meta, dict) else None
    if not isinstance(meta, dict) or not isinstance(tags or [], list):
        raise FhirError(400, "meta.tag is a list of codings", expression="meta.tag")
    archived = any(
        isinstance(t, dict) and t.get("code") == ARCHIVED_TAG["code"] for t in tags or []
    )
    status = (
        DocumentStatus.archived
        if status_value == "current" and archived
        else DocumentStatus(status_value)
    )
    # A PUT gives the whole set of labels: what it leaves out is taken off.
    try:
        confidentiality, visibility = security_labels(body, "DocumentReference")
    except SubmissionError as error:
        raise FhirError(400, error.message, code=error.code, expression=error.where) from None
    try:
        entry_uuid = uuid.UUID(entry_id)
    except ValueError:
        raise NotFound() from None
    try:
        with transaction(platform.sessions) as session:
            entry = service.get_entry(session, entry_uuid)
            if entry is not None and status != DocumentStatus(entry.status):
                if status is DocumentStatus.superseded:
                    raise SubmissionError(
                        "a document is superseded by depositing its new version", where="status"
                    )
                do_change_status(session, principal=principal, entry_id=entry_uuid, status=status)
            entry = do_set_visibility(
                session,
                principal=principal,
                entry_id=entry_uuid,
                visibility=visibility,
                confidentiality=confidentiality,
            )
            rendered = document_references(session, [entry], base=_base(platform))[0]
    except SubmissionError as error:
        raise FhirError(422, error.message, code=error.code, expression=error.where) from None
    return fhir_response(rendered)


def capability_resources() -> list[dict[str, Any]]:
    """What the CapabilityStatement says of documents (beyond the registered types)."""
    return [
        {
            "type": "DocumentReference",
            "profile": DOCUMENT_REFERENCE.profile,
            "interaction": [
                {"code": "read"},
                {"code": "search-type"},
                {"code": "update", "documentation": "status and visibility labels only"},
            ],
            "searchParam": [
                {"name": p.name, "type": p.type, "documentation": p.description}
                for p in DOCUMENTS.parameters.values()
            ]
            + [{"name": "_sort", "type": "special", "documentation": ", ".join(SORTS)}],
        },
        {"type": "Binary", "interaction": [{"code": "read"}]},
    ]
