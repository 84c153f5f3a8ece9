"""FHIR R4 routes: `metadata`, read and search (GET, or POST `_search`) of every resource
type a domain registers. The routes stay thin: authorise, parse, ask the domain, render."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from partage.access.decision import Action, decide, require
from partage.db import transaction
from partage.interop.fhir.capability import capability_statement
from partage.interop.fhir.outcome import FhirError, fhir_response, operation_outcome
from partage.interop.fhir.query import PAGE_PARAMETER, SearchRequest, parse_search
from partage.interop.fhir.resources import Rendered, ResourceType, registry
from partage.platform import Platform
from partage.search import InvalidSearch, encode_after, run_search
from partage.security.deps import BearerPrincipal
from partage.security.models import Profile
from partage.security.principal import Principal
from partage.web.deps import get_platform

router = APIRouter(prefix="/fhir", tags=["fhir"])
_RESOURCES = registry()


@router.get("/metadata")
def metadata(request: Request) -> Response:
    """The CapabilityStatement: what this server reads and searches, and how to sign in."""
    platform = get_platform(request)
    return fhir_response(capability_statement(platform.settings.issuer, _RESOURCES))


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


@router.get("/{resource_type}/{resource_id}")
def read(
    resource_type: str, resource_id: str, request: Request, principal: BearerPrincipal
) -> Response:
    resource = _resource_type(resource_type)
    platform = get_platform(request)
    _authorise(platform, principal, resource, "r")
    missing = FhirError(404, f"{resource.name}/{resource_id} is not known", code="not-found")
    try:
        row_id = uuid.UUID(resource_id)
    except ValueError:
        raise missing from None
    with platform.read_sessions() as session:
        row = resource.read(session, row_id)
        if row is None:
            raise missing
        rendered = resource.render(session, [row])[0]
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
    return "patient" if principal.profile is Profile.patient else "user"


def _authorise(
    platform: Platform, principal: Principal, resource: ResourceType, permission: str
) -> None:
    """The token's scopes must cover the request, and the access decision allow it."""
    scope_name = resource.scope_resource or resource.name
    if not principal.scopes.allows(_context(principal), scope_name, permission):
        raise FhirError(
            403,
            f"the token's scopes do not allow '{permission}' on {scope_name}",
            code="forbidden",
        )
    if not decide(principal, Action.directory_read).allowed:
        with transaction(platform.sessions) as session:
            require(session, principal, Action.directory_read, entity_type=resource.name)


def _search(
    request: Request,
    principal: Principal,
    resource: ResourceType,
    items: list[tuple[str, str]],
) -> Response:
    platform = get_platform(request)
    _authorise(platform, principal, resource, "s")
    lenient = "handling=lenient" in request.headers.get("prefer", "").replace(" ", "")
    query = parse_search(resource, items, lenient=lenient)
    with platform.read_sessions() as session:
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
    base = f"{platform.settings.issuer}/fhir"
    links = [{"relation": "self", "url": _link(base, resource, query.echoed, query.after)}]
    if page.next_after is not None:
        links.append(
            {"relation": "next", "url": _link(base, resource, query.echoed, page.next_after)}
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
    if page.total is not None:
        bundle["total"] = page.total
    elif page.next_after is None and query.after is None:
        bundle["total"] = len(matches)  # the whole result is on this one page
    bundle["link"] = links
    if entries:
        bundle["entry"] = entries
    return fhir_response(bundle)


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


def _link(base: str, resource: ResourceType, echoed: list[tuple[str, str]], after: Any) -> str:
    items = list(echoed)
    if after is not None:
        items.append((PAGE_PARAMETER, encode_after(after)))
    query = urlencode(items)
    return f"{base}/{resource.name}" + (f"?{query}" if query else "")


def _version(last_updated: str) -> str:
    return uuid.uuid5(uuid.NAMESPACE_URL, last_updated).hex[:16]
