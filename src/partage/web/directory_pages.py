"""The directory in the portal: searching professionals and structures, and their pages.

Thin: every read goes through the directory service (its searches and lookups); this module
only chooses the criteria and shapes rows for the templates (`directory_views`). The
directory is for the territory's professionals (`Action.directory_read`); anyone else gets
the same 404 as for an unknown page. The search is a plain GET form; with htmx, the results
are replaced in place as the person types.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from partage.access.decision import Action, NotFound, decide, require
from partage.db import transaction
from partage.directory import service
from partage.directory.models import Organization, Practitioner, PractitionerRole
from partage.search import Criterion, InvalidSearch, decode_after, encode_after, run_search
from partage.web import directory_views as views
from partage.web.deps import get_platform
from partage.web.i18n import N_
from partage.web.pages import (
    current_path,
    error_page,
    is_htmx,
    render,
    render_fragment,
    request_locale,
    row_id,
)
from partage.web.session import PortalUser, current_user, sign_in_redirect

router = APIRouter(prefix="/annuaire", tags=["directory"])

RESULTS_PER_PAGE = 20
STAFF_PER_PAGE = 25
QueryText = Annotated[str | None, Query(max_length=200)]
PageToken = Annotated[str | None, Query(max_length=2000)]
MSG_INVALID_SEARCH = N_("This search cannot be run: check what you entered, or start again.")


class SearchKind(StrEnum):
    professionals = "professionnels"
    structures = "structures"


@dataclass(frozen=True)
class DirectoryQuery:
    """What the search form asked for, as it travels in the page's address."""

    kind: SearchKind
    name: str = ""
    profession: str = ""
    specialty: str = ""
    city: str = ""
    include_inactive: bool = False
    page: str | None = None

    @property
    def is_empty(self) -> bool:
        filters = [self.name, self.city]
        if self.kind is SearchKind.professionals:
            filters += [self.profession, self.specialty]
        return not any(filters)

    def criteria(self) -> list[Criterion]:
        active = [] if self.include_inactive else [Criterion("active", ("true",))]
        city = [Criterion("address-city", (self.city,))] if self.city else []
        if self.kind is SearchKind.structures:
            # Structure names are long ("CENTRE HOSPITALIER DE …"): any word of it, not its start.
            name = [Criterion("name", (self.name,), "contains")] if self.name else []
            return [*name, *city, *active]
        name = [Criterion("name", (self.name,))] if self.name else []
        return [*name, *self.role_criteria(), *active]

    def role_criteria(self) -> list[Criterion]:
        """The filters on activities (also asked of each result's roles, to show the ones
        that matched)."""
        criteria = [Criterion("address-city", (self.city,))] if self.city else []
        if self.profession:
            criteria.append(Criterion("role", (self.profession,)))
        if self.specialty:
            criteria.append(Criterion("specialty", (self.specialty,)))
        return criteria

    def url(self, *, kind: SearchKind | None = None, page: str | None = None) -> str:
        kind = kind or self.kind
        items = [("kind", kind.value), ("q", self.name)]
        if kind is SearchKind.professionals:
            items += [("profession", self.profession), ("specialty", self.specialty)]
        items += [("city", self.city), ("inactive", "on" if self.include_inactive else "")]
        items.append(("page", page or ""))
        return "/annuaire?" + urlencode([(key, value) for key, value in items if value])


def _reader(request: Request) -> PortalUser | Response:
    """The signed-in professional, or the sign-in; others get the 404 (and an audit row)."""
    user = current_user(request)
    if user is None:
        return sign_in_redirect(request, current_path(request))
    if not decide(user.principal, Action.directory_read).allowed:
        with transaction(get_platform(request).sessions) as session:
            require(session, user.principal, Action.directory_read, entity_type="Directory")
    return user


# --- search ------------------------------------------------------------------------------


@router.get("")
def search_page(
    request: Request,
    kind: QueryText = None,
    q: QueryText = None,
    profession: QueryText = None,
    specialty: QueryText = None,
    city: QueryText = None,
    inactive: QueryText = None,
    page: PageToken = None,
) -> Response:
    user = _reader(request)
    if isinstance(user, Response):
        return user
    query = DirectoryQuery(
        kind=SearchKind.structures if kind == SearchKind.structures else SearchKind.professionals,
        name=(q or "").strip(),
        profession=(profession or "").strip(),
        specialty=(specialty or "").strip(),
        city=(city or "").strip(),
        include_inactive=inactive == "on",
        page=page or None,
    )
    # htmx asks for the results only, except when it rebuilds a page from history.
    fragment = is_htmx(request) and request.headers.get("hx-history-restore-request") != "true"
    with transaction(get_platform(request).read_sessions) as session:
        results = _results(session, query)
        if not fragment:
            results["professions"] = service.distinct_professions(session)
            results["specialties"] = service.distinct_specialties(session)
    if fragment:
        # Always a 200: htmx does not swap a 4xx in, and the problem is shown in the results.
        results["fragment"] = True
        return render_fragment(request, "directory/_results.html", results)
    status = 422 if results["problem"] else 200
    return render(request, "directory/search.html", results, user=user, status_code=status)


def _results(session: Session, query: DirectoryQuery) -> dict[str, Any]:
    context: dict[str, Any] = {
        "query": query,
        "kinds": SearchKind,
        "practitioners": [],
        "organizations": [],
        "total": None,
        "next_url": None,
        "first_url": query.url(page=None) if query.page else None,
        "problem": None,
    }
    if query.is_empty:
        return context
    try:
        after = decode_after(query.page) if query.page else None
        if query.kind is SearchKind.structures:
            structures = run_search(
                session,
                service.ORGANIZATIONS,
                criteria=query.criteria(),
                count=RESULTS_PER_PAGE,
                after=after,
                with_total=True,
            )
            context["organizations"] = [views.organization_summary(o) for o in structures.items]
            total, next_after = structures.total, structures.next_after
        else:
            people = run_search(
                session,
                service.PRACTITIONERS,
                criteria=query.criteria(),
                count=RESULTS_PER_PAGE,
                after=after,
                with_total=True,
            )
            context["practitioners"] = _with_activities(session, people.items, query)
            total, next_after = people.total, people.next_after
    except InvalidSearch:
        # A page token or a value the search cannot use (e.g. only accents): said plainly.
        context["problem"] = MSG_INVALID_SEARCH
        return context
    context["total"] = total
    if next_after is not None:
        context["next_url"] = query.url(page=encode_after(next_after))
    return context


def _with_activities(
    session: Session, practitioners: list[Practitioner], query: DirectoryQuery
) -> list[views.PractitionerResult]:
    """Each professional found, with the activities that matched the filters (open ones
    first): where and as what they practise is what people look for in a result."""
    if not practitioners:
        return []
    ids = tuple(str(p.id) for p in practitioners)
    roles = run_search(
        session,
        service.PRACTITIONER_ROLES,
        criteria=[Criterion("practitioner", ids), *query.role_criteria()],
        # Most professionals have one to three activities; a few more are not shown.
        count=RESULTS_PER_PAGE * 10,
    ).items
    structures = _structures_of(session, roles)
    return [views.practitioner_result(p, roles, structures) for p in practitioners]


def _structures_of(
    session: Session, roles: list[PractitionerRole]
) -> dict[uuid.UUID, Organization]:
    """The structures of these activities, and the FINESS sites their practices belong to."""
    practices = service.organizations_by_id(
        session, ids=[r.organization_id for r in roles if r.organization_id]
    )
    sites = service.organizations_by_id(session, ids=views.site_ids(practices.values()))
    return {**practices, **sites}


# --- a professional ------------------------------------------------------------------------


@router.get("/professionnels/{practitioner_id}")
def practitioner_page(request: Request, practitioner_id: str) -> Response:
    user = _reader(request)
    if isinstance(user, Response):
        return user
    practitioner_uuid = row_id(practitioner_id)
    locale = request_locale(request)
    with transaction(get_platform(request).read_sessions) as session:
        practitioner = service.get_practitioner(session, practitioner_id=practitioner_uuid)
        if practitioner is None:
            raise NotFound()
        roles = service.roles_of_practitioner(session, practitioner_id=practitioner_uuid)
        structures = _structures_of(session, roles)
        activities = [views.activity(r, structures, locale) for r in roles]
        context = {
            "practitioner": views.practitioner_identity(practitioner),
            "current": [a for a in activities if a.active],
            "history": [a for a in activities if not a.active],
        }
    return render(request, "directory/practitioner.html", context, user=user)


# --- a structure ---------------------------------------------------------------------------


@router.get("/structures/{organization_id}")
def organization_page(request: Request, organization_id: str, page: PageToken = None) -> Response:
    user = _reader(request)
    if isinstance(user, Response):
        return user
    organization_uuid = row_id(organization_id)
    with transaction(get_platform(request).read_sessions) as session:
        organization = service.get_organization(session, organization_id=organization_uuid)
        if organization is None:
            raise NotFound()
        related = [organization.parent_id, organization.site_id]
        known = service.organizations_by_id(session, ids=[i for i in related if i])
        try:
            staff = run_search(
                session,
                service.PRACTITIONER_ROLES,
                criteria=[
                    Criterion("organization", (str(organization_uuid),)),
                    Criterion("active", ("true",)),
                ],
                count=STAFF_PER_PAGE,
                after=decode_after(page) if page else None,
            )
        except InvalidSearch:
            return error_page(request, "invalid_request", 400)
        people = service.practitioners_by_id(session, ids=[r.practitioner_id for r in staff.items])
        sites_of_staff = service.organizations_by_id(
            session, ids=[r.organization_id for r in staff.items if r.organization_id]
        )
        base = f"/annuaire/structures/{organization_uuid}"
        context = {
            "organization": views.organization_detail(organization, known),
            "sites": [
                views.organization_summary(s)
                for s in service.sites_of_organization(session, organization_id=organization_uuid)
            ],
            "staff": views.staff(staff.items, people, sites_of_staff, organization),
            "next_url": f"{base}?{urlencode({'page': encode_after(staff.next_after)})}"
            if staff.next_after is not None
            else None,
            "first_url": base if page else None,
        }
    return render(request, "directory/organization.html", context, user=user)
