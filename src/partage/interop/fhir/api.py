"""FHIR R4 routes: `metadata`, read and search (GET, or POST `_search`) of every resource
type a domain registers, and the operations (`$name`) they declare. The routes stay thin:
authorise, parse, ask the domain, render.

Public types (the directory) are read from the read-only sessions, unaudited. Patient data
types (`ResourceType.audit`) are read in a write transaction that asks the access decision
first (a denial answers as "not found" and is audited) and records the read — or the search,
one row listing the persons returned — in the same transaction."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from sqlalchemy.orm import Session

from partage.access.decision import Decision, decide, require
from partage.audit.actions import record
from partage.db import transaction
from partage.interop.fhir.capability import capability_statement
from partage.interop.fhir.outcome import FhirError, fhir_response, operation_outcome
from partage.interop.fhir.query import PAGE_PARAMETER, SearchRequest, parse_search
from partage.interop.fhir.resources import (
    Operation,
    OperationCall,
    Rendered,
    ResourceType,
    registry,
)
from partage.platform import Platform
from partage.search import InvalidSearch, encode_after, run_search
from partage.security.deps import BearerPrincipal
from partage.security.models import Profile
from partage.security.principal import Principal
from partage.web.deps import get_platform

router = APIRouter(prefix="/fhir", tags=["fhir"])
_RESOURCES = registry()
# An operation's JSON body is one resource (a Parameters): far below this.
MAX_OPERATION_BODY = 1_000_000


@router.get("/metadata")
def metadata(request: Request) -> Response:
    """The CapabilityStatement: what this server reads and searches, and how to sign in."""
    platform = get_platform(request)
    # Imported here: the documents' routes build on this module.
    from partage.documents.fhir_api import capability_resources

    statement = capability_statement(platform.settings.issuer, _RESOURCES)
    statement["rest"][0]["resource"] += capability_resources()
    statement["rest"][0]["interaction"] = [
        {"code": "transaction", "documentation": "IHE MHD ITI-65 (Provide Document Bundle)"}
    ]
    return fhir_response(statement)


@router.get("/{resource_type}")
def search(resource_type: str, request: Request, principal: BearerPrincipal) -> Response:
    resource = _resource_type(resource_type)
    return _search(request, principal, resource, list(request.query_params.multi_items()))


@router.post("/{resource_type}/_search")
async def search_by_post(
    resource_type: str, request: Request, principal: BearerPrincipal
) -> Response:
    resource = _resource_type(resource_type)
    form = await request.form()
    items = list(request.query_params.multi_items())
    items += [(k, v) for k, v in form.multi_items() if isinstance(v, str)]
    return await run_in_threadpool(_search, request, principal, resource, items)


# Before the read route, which `/Patient/$match` would match too.
@router.get("/{resource_type}/${operation}")
async def operation_by_get(
    resource_type: str, operation: str, request: Request, principal: BearerPrincipal
) -> Response:
    """`[base]/<type>/$<operation>`: the operations a resource type declares."""
    return await _operation(resource_type, operation, request, principal)


@router.post("/{resource_type}/${operation}")
async def operation_by_post(
    resource_type: str, operation: str, request: Request, principal: BearerPrincipal
) -> Response:
    return await _operation(resource_type, operation, request, principal)


async def _operation(
    resource_type: str, operation: str, request: Request, principal: Principal
) -> Response:
    resource = _resource_type(resource_type)
    declared = resource.operation(operation)
    if declared is None:
        raise FhirError(
            404,
            f"{resource.name} has no operation ${operation} (see /fhir/metadata)",
            code="not-supported",
        )
    if request.method not in declared.methods:
        allowed = ", ".join(sorted(declared.methods))
        raise FhirError(405, f"${declared.name} is invoked with {allowed}", code="not-supported")
    body = await _json_body(request) if request.method == "POST" else None
    items = list(request.query_params.multi_items())
    return await run_in_threadpool(
        _run_operation, request, principal, resource, declared, items, body
    )


@router.get("/{resource_type}/{resource_id}")
def read(
    resource_type: str, resource_id: str, request: Request, principal: BearerPrincipal
) -> Response:
    resource = _resource_type(resource_type)
    platform = get_platform(request)
    missing = FhirError(404, f"{resource.name}/{resource_id} is not known", code="not-found")
    try:
        row_id: uuid.UUID | None = uuid.UUID(resource_id)
    except ValueError:
        row_id = None
    entity_id = resource_id[:128]
    with _access(platform, principal, resource, "r", entity_id=entity_id) as (session, decision):
        row = resource.read(session, row_id) if row_id is not None else None
        rendered = resource.render(session, [row])[0] if row is not None else None
        if resource.audit is not None:
            record(
                session,
                actor=principal.actor,
                action=f"{resource.audit.action}.read",
                outcome="success" if row is not None else "not_found",
                entity_type=resource.name,
                entity_id=entity_id,
                person_id=resource.audit.person_of(row) if row is not None else None,
                basis=_basis(decision),
            )
    if rendered is None:
        raise missing
    last_updated = rendered.get("meta", {}).get("lastUpdated", "")
    return fhir_response(rendered, headers={"ETag": f'W/"{_version(last_updated)}"'})


def _resource_type(name: str) -> ResourceType:
    resource = _RESOURCES.get(name)
    if resource is None:
        raise FhirError(
            404, f"this server does not serve the resource type '{name}'", code="not-supported"
        )
    return resource


def _context(principal: Principal) -> str:
    if principal.kind == "client":
        return "system"
    # `==`, not `is`: a bearer token's principal carries the profile as read, a plain string.
    return "patient" if principal.profile == Profile.patient else "user"


def _check_scopes(principal: Principal, resource: ResourceType, permission: str) -> None:
    check_scopes(principal, resource.scope_resource or resource.name, permission)


def check_scopes(principal: Principal, scope_name: str, permission: str) -> None:
    """The token's scopes must cover the request (403 otherwise: a client error to fix)."""
    if not principal.scopes.allows(_context(principal), scope_name, permission):
        raise FhirError(
            403,
            f"the token's scopes do not allow '{permission}' on {scope_name}",
            code="forbidden",
        )


@contextmanager
def _access(
    platform: Platform,
    principal: Principal,
    resource: ResourceType,
    permission: str,
    *,
    entity_id: str | None = None,
) -> Iterator[tuple[Session, Decision | None]]:
    """A session to read `resource` in, once the scopes and the access decision allow it.

    Public types: the read-only sessions (a denial is still audited, in a transaction of
    its own). Audited types: one write transaction for the decision, the reads and their
    audit row; the decision is given back for the row's basis.
    """
    _check_scopes(principal, resource, permission)
    if resource.audit is None:
        if not decide(principal, resource.action).allowed:
            with transaction(platform.sessions) as session:
                require(session, principal, resource.action, entity_type=resource.name)
        with platform.read_sessions() as session:
            yield session, None
        return
    with transaction(platform.sessions) as session:
        decision = require(
            session, principal, resource.action, entity_type=resource.name, entity_id=entity_id
        )
        yield session, decision


def _basis(decision: Decision | None) -> str | None:
    return decision.basis_code if decision is not None else None


def _search(
    request: Request,
    principal: Principal,
    resource: ResourceType,
    items: list[tuple[str, str]],
) -> Response:
    platform = get_platform(request)
    lenient = "handling=lenient" in request.headers.get("prefer", "").replace(" ", "")
    with _access(platform, principal, resource, "s") as (session, decision):
        query = parse_search(resource, items, lenient=lenient)
        if resource.audit is not None and not query.criteria:
            # Patient data is found, not listed: no search returns the whole index.
            raise FhirError(
                400,
                f"a {resource.name} search needs at least one search parameter",
                code="required",
            )
        try:
            page = run_search(
                session,
                resource.spec,
                criteria=query.criteria,
                count=query.count,
                after=query.after,
                with_total=query.with_total,
            )
        except InvalidSearch as error:
            raise FhirError(400, str(error)) from None
        matches = resource.render(session, page.items)
        included = _included(session, resource, query, page.items)
        if resource.audit is not None:
            _audit_search(session, principal, resource, decision, query, page.items, page.total)
    bundle = searchset(
        f"{platform.settings.issuer}/fhir",
        resource.name,
        query,
        matches=matches,
        included=included,
        next_after=page.next_after,
        total=page.total,
    )
    return fhir_response(bundle)


def searchset(
    base: str,
    resource_name: str,
    query: SearchRequest,
    *,
    matches: list[Rendered],
    included: list[Rendered],
    next_after: Any,
    total: int | None,
) -> dict[str, Any]:
    """A page of search results as a `searchset` Bundle, with its self and next links."""
    links = [{"relation": "self", "url": _link(base, resource_name, query.echoed, query.after)}]
    if next_after is not None:
        links.append(
            {"relation": "next", "url": _link(base, resource_name, query.echoed, next_after)}
        )
    entries: list[dict[str, Any]] = [_entry(base, r, "match") for r in matches] + [
        _entry(base, r, "include") for r in included
    ]
    if query.ignored:
        warning = operation_outcome(
            "ignored unknown parameters: " + ", ".join(query.ignored),
            code="not-supported",
            severity="warning",
        )
        entries.append({"resource": warning, "search": {"mode": "outcome"}})
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "id": str(uuid.uuid4()),
        "meta": {"lastUpdated": datetime.now(UTC).isoformat()},
        "type": "searchset",
    }
    if total is not None:
        bundle["total"] = total
    elif next_after is None and query.after is None:
        bundle["total"] = len(matches)  # the whole result is on this one page
    bundle["link"] = links
    if entries:
        bundle["entry"] = entries
    return bundle


def _audit_search(
    session: Session,
    principal: Principal,
    resource: ResourceType,
    decision: Decision | None,
    query: SearchRequest,
    rows: list[Any],
    total: int | None,
) -> None:
    """One row per search (per page): the parameters' names — never their values, which
    are names and birth dates — and the persons returned."""
    assert resource.audit is not None
    persons = [p for p in (resource.audit.person_of(row) for row in rows) if p]
    record(
        session,
        actor=principal.actor,
        action=f"{resource.audit.action}.search",
        entity_type=resource.name,
        # The person's own index finds the search when it returned only them.
        person_id=persons[0] if len(set(persons)) == 1 else None,
        basis=_basis(decision),
        detail={
            "parameters": sorted({c.name for c in query.criteria}),
            "persons": persons,
            "total": total,
            "next_page": query.after is not None,
        },
    )


async def _json_body(request: Request) -> Any:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in ("application/fhir+json", "application/json"):
        raise FhirError(415, "send the operation's parameters as application/fhir+json")
    raw = await request.body()
    if len(raw) > MAX_OPERATION_BODY:
        raise FhirError(413, "the request body is too large", code="too-costly")
    try:
        return json.loads(raw)
    except ValueError:
        raise FhirError(400, "the request body is not JSON", code="structure") from None


def _run_operation(
    request: Request,
    principal: Principal,
    resource: ResourceType,
    declared: Operation,
    items: list[tuple[str, str]],
    body: Any | None,
) -> Response:
    platform = get_platform(request)
    _check_scopes(principal, resource, declared.permission)
    with transaction(platform.sessions) as session:
        decision = require(session, principal, resource.action, entity_type=resource.name)
        result = declared.run(
            session,
            OperationCall(
                principal=principal,
                decision=decision,
                base=f"{platform.settings.issuer}/fhir",
                parameters=items,
                body=body,
            ),
        )
    return fhir_response(result.body, status=result.status)


def _included(
    session: Any, resource: ResourceType, query: SearchRequest, rows: list[Any]
) -> list[Rendered]:
    included: list[Rendered] = []
    seen: set[tuple[str, str]] = set()
    for parameter, target in query.includes:
        include = next(i for i in resource.includes if i.parameter == parameter)
        target_type = _RESOURCES[target]
        for rendered in target_type.render(session, include.load(session, rows)):
            key = (rendered["resourceType"], rendered["id"])
            if key not in seen:
                seen.add(key)
                included.append(rendered)
    return included


def _entry(base: str, resource: Rendered, mode: str) -> dict[str, Any]:
    return {
        "fullUrl": f"{base}/{resource['resourceType']}/{resource['id']}",
        "resource": resource,
        "search": {"mode": mode},
    }


def _link(base: str, resource_name: str, echoed: list[tuple[str, str]], after: Any) -> str:
    items = list(echoed)
    if after is not None:
        items.append((PAGE_PARAMETER, encode_after(after)))
    query = urlencode(items)
    return f"{base}/{resource_name}" + (f"?{query}" if query else "")


def _version(last_updated: str) -> str:
    return uuid.uuid5(uuid.NAMESPACE_URL, last_updated).hex[:16]
