"""The console's dashboard (counts and charts, no one's identity)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from partage.access.decision import Action, decide
from partage.db import transaction
from partage.web import identity_console as console
from partage.web import identity_views as views
from partage.web.deps import get_platform
from partage.web.i18n import N_, gettext
from partage.web.identity_dashboard_views import dashboard
from partage.web.pages import request_locale
from partage.web.session import signed_in

router = APIRouter()


@router.get("")
def dashboard_page(request: Request) -> Response:
    user = signed_in(request, views.CONSOLE)
    if isinstance(user, Response):
        return user
    locale = request_locale(request)
    platform = get_platform(request)
    if not decide(user.principal, Action.identity_read).allowed:
        with transaction(platform.sessions) as session:
            console.may_read(session, user, "identity_dashboard", None)  # audits the denial, raises
    # Counts only, no one's identity: no read of patient data to audit, so the aggregates
    # run on the read sessions (on SQLite, without holding the write lock).
    with transaction(platform.read_sessions) as session:
        board = dashboard(session, locale)
    return console.page(
        request,
        user,
        "identity/_dashboard.html",
        gettext(locale, N_("Identity vigilance")),
        {"board": board},
        section="dashboard",
    )
