"""The console's search of local identities."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from partage.db import transaction
from partage.web import identity_console as console
from partage.web import identity_search_views as search
from partage.web.deps import get_platform
from partage.web.i18n import N_, gettext
from partage.web.identity_console import QueryText
from partage.web.identity_views import IdentityView
from partage.web.pages import current_path, request_locale
from partage.web.session import signed_in

router = APIRouter()


@router.get("/recherche")
def search_page(
    request: Request,
    nom: QueryText = None,
    prenom: QueryText = None,
    naissance: QueryText = None,
    ipp: QueryText = None,
    ins: QueryText = None,
) -> Response:
    user = signed_in(request, current_path(request))
    if isinstance(user, Response):
        return user
    locale = request_locale(request)
    criteria = search.SearchCriteria(
        name=(nom or "").strip(),
        given=(prenom or "").strip(),
        born=(naissance or "").strip(),
        ipp=(ipp or "").strip(),
        ins=(ins or "").strip(),
    )
    results: list[IdentityView] = []
    more = False
    problem: str | None = None
    with transaction(get_platform(request).sessions) as session:
        decision = console.may_read(session, user, "local_identity", None)
        if not criteria.is_empty:
            try:
                results, more = search.search_identities(session, criteria, locale)
            except search.InvalidCriteria as error:
                problem = gettext(locale, str(error))
            console.audit_read(
                session,
                user,
                decision,
                action="searched",
                entity_type="local_identity",
                entity_id=None,
                shown=[(v.person_id, v.id) for v in results],
                detail={"criteria": criteria.used()},
            )
    return console.page(
        request,
        user,
        "identity/_search.html",
        gettext(locale, N_("Search identities")),
        {"criteria": criteria, "results": results, "more": more, "problem": problem},
        section="search",
        status_code=422 if problem else 200,
    )
