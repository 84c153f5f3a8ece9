"""What every page of the identity-vigilance console shares: access, the audited read,
the page frame, and the way an action is checked, done and shown.

Every page that shows identities is a read of patient data: it is audited in the same
transaction, one row per person shown (so a patient's access history finds it), with the
ids of what was shown — never names.

Actions are plain form posts (CSRF token in the form) that redirect back to their page
with a notice; a refusal re-shows the page with the message next to the form and what was
typed. With htmx, the same posts swap the page's content in place instead. Each action
needs a reason, kept in the history.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Annotated, Any

from fastapi import Form, Query, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from partage.access.decision import Action, Decision, decide, require
from partage.audit.actions import Actor, record
from partage.db import transaction
from partage.identity.service import IdentityError
from partage.web import csrf
from partage.web import identity_views as views
from partage.web.deps import get_platform
from partage.web.i18n import N_, gettext
from partage.web.pages import (
    error_page,
    is_htmx,
    render,
    render_fragment,
    request_locale,
    see_other,
)
from partage.web.session import PortalUser, signed_in

FormText = Annotated[str, Form(max_length=4096)]
FormList = Annotated[list[str] | None, Form()]
QueryText = Annotated[str | None, Query(max_length=200)]

MSG_REASON = N_("Give the reason: it is required and kept in the history.")
# ?fait=… on the page an action returns to -> what the page says.
DONE_MESSAGES = {
    "rattache": N_("Linked: the two identities now belong to the same person."),
    "pas-un-doublon": N_(
        "Recorded: these are two different persons; they will not be proposed again."
    ),
    "defusionne": N_("The link has been undone: the identity is back in a person of its own."),
    "fusionne": N_(
        "The persons have been merged: the identities of the other one joined this one."
    ),
    "statut": N_("The status has been changed."),
    "ins": N_("The INS has been attached."),
}
SECTIONS = {
    "dashboard": N_("Dashboard"),
    "queue": N_("Potential duplicates"),
    "search": N_("Search"),
}

Shown = Iterable[tuple[uuid.UUID, uuid.UUID]]  # (person id, identity id) of what a page shows


# --- access, audit, rendering -----------------------------------------------------------------


def may_read(
    session: Session, user: PortalUser, entity_type: str, entity_id: str | None
) -> Decision:
    return require(
        session, user.principal, Action.identity_read, entity_type=entity_type, entity_id=entity_id
    )


def audit_read(
    session: Session,
    user: PortalUser,
    decision: Decision,
    *,
    action: str,
    entity_type: str,
    entity_id: str | None,
    shown: Shown,
    detail: dict[str, Any] | None = None,
    person_id: uuid.UUID | None = None,
) -> None:
    """One audit row per person whose identities the page shows (at least one row: for
    `person_id` if given, when the page shows no identity)."""
    by_person: dict[uuid.UUID, list[str]] = defaultdict(list)
    for owner, identity_id in shown:
        if str(identity_id) not in by_person[owner]:
            by_person[owner].append(str(identity_id))
    persons: list[tuple[uuid.UUID | None, list[str]]] = [*by_person.items()] or [(person_id, [])]
    for person, identities in persons:
        record(
            session,
            actor=user.principal.actor,
            action=f"identity.{action}",
            entity_type=entity_type,
            entity_id=entity_id,
            person_id=str(person) if person else None,
            basis=decision.basis,
            detail={**(detail or {}), "identities": identities},
        )


def page(
    request: Request,
    user: PortalUser,
    body: str,
    title: str,
    context: dict[str, Any],
    *,
    section: str | None = None,
    status_code: int = 200,
) -> Response:
    """The page, or for an htmx form post its content only (always a 200: htmx does not swap
    other answers in, and a refusal is said in the content)."""
    context = {
        **context,
        "body": body,
        "title": title,
        "section": section,
        "sections": SECTIONS,
        "can_manage": decide(user.principal, Action.identity_manage).allowed,
    }
    if request.method == "POST" and is_htmx(request):
        fragment = {**context, "user": user, "csrf_token": user.csrf_token}
        return render_fragment(request, body, fragment)
    return render(request, "identity/page.html", context, user=user, status_code=status_code)


def notice(done: str | None) -> str | None:
    return DONE_MESSAGES.get(done or "")


# The page an action shows: (request, user, entity id, notice, problem, form, status).
Show = Callable[..., Response]
Act = Callable[[Session, Actor], str]


def action(
    request: Request,
    *,
    entity_type: str,
    entity_id: uuid.UUID,
    page_url: str,
    csrf_token: str,
    form: dict[str, Any],
    act: Act,
    show: Show,
    check: Callable[[Session], str | None] | None = None,
) -> Response:
    """Check, do, and show: back to the page with a notice, or the page with the problem."""
    user = signed_in(request, page_url)
    if isinstance(user, Response):
        return user
    locale = request_locale(request)
    problem: str | None = None
    done = ""
    with transaction(get_platform(request).sessions) as session:
        require(
            session,
            user.principal,
            Action.identity_manage,
            entity_type=entity_type,
            entity_id=str(entity_id),
        )
        if not csrf.session_csrf_ok(request, user.csrf_token, csrf_token):
            return error_page(request, "csrf", 403)
        problem = check(session) if check else None
        if problem is None and not str(form.get("reason", "")).strip():
            problem = MSG_REASON
        if problem is not None:
            problem = gettext(locale, problem)
        else:
            try:
                done = act(session, user.principal.actor)
            except IdentityError as error:
                session.rollback()
                problem = views.explain(locale, error)
    if problem is None:
        if is_htmx(request):
            return show(request, user, entity_id, notice=DONE_MESSAGES[done])
        return see_other(f"{page_url}?fait={done}")
    return show(request, user, entity_id, problem=problem, form=form, status_code=422)
