"""The identity-vigilance console: potential duplicates, persons, local identities, search.

For identity-vigilance officers only (`Action.identity_read` to see, `Action.identity_manage`
to act); anyone else gets the same 404 as for an unknown page, and the denial is audited.
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

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from partage.access.decision import Action, Decision, NotFound, decide, require
from partage.audit.actions import Actor, record
from partage.db import transaction
from partage.identity import operations
from partage.identity.models import LocalIdentity, Person, Review, ReviewStatus
from partage.identity.service import IdentityError
from partage.identity.store import ATTRIBUTES
from partage.identity.traits import IdentityStatus
from partage.web import csrf
from partage.web import identity_views as views
from partage.web.deps import get_platform
from partage.web.i18n import N_, gettext
from partage.web.pages import (
    current_path,
    error_page,
    is_htmx,
    render,
    render_fragment,
    request_locale,
    see_other,
)
from partage.web.session import PortalUser, current_user, sign_in_redirect

router = APIRouter(prefix=views.CONSOLE, tags=["identity-vigilance"])

FormText = Annotated[str, Form(max_length=4096)]
FormList = Annotated[list[str] | None, Form()]
QueryText = Annotated[str | None, Query(max_length=200)]
PageToken = Annotated[str | None, Query(max_length=200)]

MSG_REASON = N_("Give the reason: it is required and kept in the history.")
MSG_OTHER_PERSON = N_("Enter the identifier of the other person, as shown on its page.")
MSG_NOT_HERE = N_("This identity no longer belongs to this person: reload the page.")
MSG_CHOOSE_STATUS = N_("Choose a status.")
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


def _signed_in(request: Request, return_to: str) -> PortalUser | Response:
    user = current_user(request)
    if user is None:
        return sign_in_redirect(request, return_to)
    return user


def _row_id(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise NotFound() from None


def _may_read(
    session: Session, user: PortalUser, entity_type: str, entity_id: str | None
) -> Decision:
    return require(
        session, user.principal, Action.identity_read, entity_type=entity_type, entity_id=entity_id
    )


def _audit_read(
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


def _page(
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


def _notice(done: str | None) -> str | None:
    return DONE_MESSAGES.get(done or "")


# The page an action shows: (request, user, entity id, notice, problem, form, status).
Show = Callable[..., Response]
Act = Callable[[Session, Actor], str]


def _act(
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
    user = _signed_in(request, page_url)
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


# --- the dashboard ------------------------------------------------------------------------------


@router.get("")
def dashboard_page(request: Request) -> Response:
    user = _signed_in(request, views.CONSOLE)
    if isinstance(user, Response):
        return user
    locale = request_locale(request)
    platform = get_platform(request)
    if not decide(user.principal, Action.identity_read).allowed:
        with transaction(platform.sessions) as session:
            _may_read(session, user, "identity_dashboard", None)  # audits the denial, raises
    # Counts only, no one's identity: no read of patient data to audit, so the aggregates
    # run on the read sessions (on SQLite, without holding the write lock).
    with transaction(platform.read_sessions) as session:
        board = views.dashboard(session, locale)
    return _page(
        request,
        user,
        "identity/_dashboard.html",
        gettext(locale, N_("Identity vigilance")),
        {"board": board},
        section="dashboard",
    )


# --- the queue ----------------------------------------------------------------------------------


@router.get("/doublons")
def queue_page(request: Request, ordre: QueryText = None, apres: PageToken = None) -> Response:
    user = _signed_in(request, current_path(request))
    if isinstance(user, Response):
        return user
    locale = request_locale(request)
    oldest = ordre == "anciennete"
    with transaction(get_platform(request).sessions) as session:
        decision = _may_read(session, user, "review", None)
        try:
            queue = views.open_reviews(session, oldest=oldest, after=apres or None, locale=locale)
        except views.InvalidPage:
            return error_page(request, "invalid_request", 400)
        _audit_read(
            session,
            user,
            decision,
            action="queue_viewed",
            entity_type="review",
            entity_id=None,
            shown=[(v.person_id, v.id) for row in queue.rows for v in (row.first, row.second)],
            detail={"reviews": [str(row.id) for row in queue.rows]},
        )
    order = "anciennete" if oldest else "score"
    base = f"{views.CONSOLE}/doublons?ordre={order}"
    return _page(
        request,
        user,
        "identity/_queue.html",
        gettext(locale, N_("Potential duplicates")),
        {
            "queue": queue,
            "oldest": oldest,
            "order_urls": {
                "score": f"{views.CONSOLE}/doublons?ordre=score",
                "anciennete": f"{views.CONSOLE}/doublons?ordre=anciennete",
            },
            "next_url": f"{base}&apres={queue.next_token}" if queue.next_token else None,
            "first_url": base if apres else None,
        },
        section="queue",
    )


# --- a review -----------------------------------------------------------------------------------


def _show_review(
    request: Request,
    user: PortalUser,
    review_id: uuid.UUID,
    *,
    notice: str | None = None,
    problem: str | None = None,
    form: dict[str, Any] | None = None,
    status_code: int = 200,
) -> Response:
    locale = request_locale(request)
    with transaction(get_platform(request).sessions) as session:
        decision = _may_read(session, user, "review", str(review_id))
        review = session.get(Review, review_id)
        view = views.review_view(session, review, locale) if review is not None else None
        if view is None:
            raise NotFound()
        _audit_read(
            session,
            user,
            decision,
            action="review_viewed",
            entity_type="review",
            entity_id=str(review_id),
            shown=[(view.first.person_id, view.first.id), (view.second.person_id, view.second.id)],
        )
        next_review = views.next_open_review(session, excluding=review_id)
    return _page(
        request,
        user,
        "identity/_review.html",
        gettext(locale, N_("Potential duplicate")),
        {
            "review": view,
            "notice": notice,
            "problem": problem,
            "form": form or {},
            "next_href": views.review_href(next_review) if next_review else None,
        },
        section="queue",
        status_code=status_code,
    )


@router.get("/doublons/{review_id}")
def review_page(request: Request, review_id: str, fait: QueryText = None) -> Response:
    user = _signed_in(request, current_path(request))
    if isinstance(user, Response):
        return user
    return _show_review(request, user, _row_id(review_id), notice=_notice(fait))


@router.post("/doublons/{review_id}/rattacher")
def link_review(
    request: Request, review_id: str, reason: FormText = "", csrf_token: FormText = ""
) -> Response:
    row_id = _row_id(review_id)

    def act(session: Session, actor: Actor) -> str:
        operations.do_link_review(session, review_id=row_id, actor=actor, reason=reason)
        return "rattache"

    return _act(
        request,
        entity_type="review",
        entity_id=row_id,
        page_url=views.review_href(row_id),
        csrf_token=csrf_token,
        form={"name": "link", "reason": reason},
        act=act,
        show=_show_review,
    )


@router.post("/doublons/{review_id}/pas-un-doublon")
def not_a_duplicate(
    request: Request, review_id: str, reason: FormText = "", csrf_token: FormText = ""
) -> Response:
    row_id = _row_id(review_id)

    def act(session: Session, actor: Actor) -> str:
        review = session.get(Review, row_id)
        if review is None or review.status != ReviewStatus.open:
            raise IdentityError("no such open review")
        operations.do_mark_not_duplicate(
            session,
            first_id=review.first_id,
            second_id=review.second_id,
            actor=actor,
            reason=reason,
        )
        return "pas-un-doublon"

    return _act(
        request,
        entity_type="review",
        entity_id=row_id,
        page_url=views.review_href(row_id),
        csrf_token=csrf_token,
        form={"name": "not_duplicate", "reason": reason},
        act=act,
        show=_show_review,
    )


# --- a person -----------------------------------------------------------------------------------


def _show_person(
    request: Request,
    user: PortalUser,
    person_id: uuid.UUID,
    *,
    notice: str | None = None,
    problem: str | None = None,
    form: dict[str, Any] | None = None,
    status_code: int = 200,
) -> Response:
    locale = request_locale(request)
    with transaction(get_platform(request).sessions) as session:
        decision = _may_read(session, user, "person", str(person_id))
        person = session.get(Person, person_id)
        if person is None:
            raise NotFound()
        view = views.person_view(session, person, locale)
        _audit_read(
            session,
            user,
            decision,
            action="person_viewed",
            entity_type="person",
            entity_id=str(person_id),
            shown=[(person_id, i.id) for i in view.identities],
            person_id=person_id,
        )
    return _page(
        request,
        user,
        "identity/_person.html",
        gettext(locale, N_("Territorial person")),
        {"person": view, "notice": notice, "problem": problem, "form": form or {}},
        status_code=status_code,
    )


@router.get("/personnes/{person_id}")
def person_page(request: Request, person_id: str, fait: QueryText = None) -> Response:
    user = _signed_in(request, current_path(request))
    if isinstance(user, Response):
        return user
    return _show_person(request, user, _row_id(person_id), notice=_notice(fait))


@router.post("/personnes/{person_id}/defusionner")
def unmerge(
    request: Request,
    person_id: str,
    identity: FormText = "",
    reason: FormText = "",
    csrf_token: FormText = "",
) -> Response:
    row_id = _row_id(person_id)
    try:
        identity_id: uuid.UUID | None = uuid.UUID(identity)
    except ValueError:
        identity_id = None

    def check(session: Session) -> str | None:
        found = session.get(LocalIdentity, identity_id) if identity_id else None
        return None if found is not None and found.person_id == row_id else MSG_NOT_HERE

    def act(session: Session, actor: Actor) -> str:
        assert identity_id is not None  # checked
        operations.do_unmerge(session, identity_id=identity_id, actor=actor, reason=reason)
        return "defusionne"

    return _act(
        request,
        entity_type="person",
        entity_id=row_id,
        page_url=views.person_href(row_id),
        csrf_token=csrf_token,
        form={"name": "unmerge", "identity": identity, "reason": reason},
        act=act,
        show=_show_person,
        check=check,
    )


@router.post("/personnes/{person_id}/fusionner")
def merge(
    request: Request,
    person_id: str,
    other: FormText = "",
    reason: FormText = "",
    csrf_token: FormText = "",
) -> Response:
    row_id = _row_id(person_id)
    try:
        other_id: uuid.UUID | None = uuid.UUID(other.strip())
    except ValueError:
        other_id = None

    def check(session: Session) -> str | None:
        return None if other_id is not None else MSG_OTHER_PERSON

    def act(session: Session, actor: Actor) -> str:
        assert other_id is not None  # checked
        operations.do_merge_persons(
            session, kept_id=row_id, absorbed_id=other_id, actor=actor, reason=reason
        )
        return "fusionne"

    return _act(
        request,
        entity_type="person",
        entity_id=row_id,
        page_url=views.person_href(row_id),
        csrf_token=csrf_token,
        form={"name": "merge", "other": other, "reason": reason},
        act=act,
        show=_show_person,
        check=check,
    )


# --- a local identity ---------------------------------------------------------------------------


def _show_identity(
    request: Request,
    user: PortalUser,
    identity_id: uuid.UUID,
    *,
    notice: str | None = None,
    problem: str | None = None,
    form: dict[str, Any] | None = None,
    status_code: int = 200,
) -> Response:
    locale = request_locale(request)
    with transaction(get_platform(request).sessions) as session:
        decision = _may_read(session, user, "local_identity", str(identity_id))
        row = session.get(LocalIdentity, identity_id)
        if row is None:
            raise NotFound()
        view = views.identity_views(session, [row], locale)[0]
        links, events = views.identity_history(session, identity_id, locale)
        reviews = views.reviews_of_identity(session, identity_id, locale)
        _audit_read(
            session,
            user,
            decision,
            action="local_viewed",
            entity_type="local_identity",
            entity_id=str(identity_id),
            shown=[(row.person_id, row.id)],
        )
        form = form or {}
        if "status" not in form:
            form = {
                **form,
                "status": row.status,
                "attributes": [name for name in ATTRIBUTES if getattr(row, name)],
            }
    return _page(
        request,
        user,
        "identity/_identity.html",
        gettext(locale, N_("Local identity")),
        {
            "identity": view,
            "links": links,
            "events": events,
            "reviews": reviews,
            "statuses": [
                (s.value, gettext(locale, views.STATUS_LABELS[s])) for s in IdentityStatus
            ],
            "attributes": [
                (name, gettext(locale, views.ATTRIBUTE_LABELS[name])) for name in ATTRIBUTES
            ],
            "notice": notice,
            "problem": problem,
            "form": form,
        },
        status_code=status_code,
    )


@router.get("/identites/{identity_id}")
def identity_page(request: Request, identity_id: str, fait: QueryText = None) -> Response:
    user = _signed_in(request, current_path(request))
    if isinstance(user, Response):
        return user
    return _show_identity(request, user, _row_id(identity_id), notice=_notice(fait))


@router.post("/identites/{identity_id}/statut")
def change_status(
    request: Request,
    identity_id: str,
    status: FormText = "",
    attributes: FormList = None,
    reason: FormText = "",
    csrf_token: FormText = "",
) -> Response:
    row_id = _row_id(identity_id)
    chosen = next((s for s in IdentityStatus if s.value == status), None)
    checked = [name for name in (attributes or []) if name in ATTRIBUTES]

    def check(session: Session) -> str | None:
        return None if chosen is not None else MSG_CHOOSE_STATUS

    def act(session: Session, actor: Actor) -> str:
        assert chosen is not None  # checked
        operations.do_change_status(
            session,
            identity_id=row_id,
            status=chosen,
            attributes=frozenset(checked),
            actor=actor,
            reason=reason,
        )
        return "statut"

    return _act(
        request,
        entity_type="local_identity",
        entity_id=row_id,
        page_url=views.identity_href(row_id),
        csrf_token=csrf_token,
        form={"name": "status", "status": status, "attributes": checked, "reason": reason},
        act=act,
        show=_show_identity,
        check=check,
    )


@router.post("/identites/{identity_id}/ins")
def attach_ins(
    request: Request,
    identity_id: str,
    ins: FormText = "",
    verified: FormText = "",
    reason: FormText = "",
    csrf_token: FormText = "",
) -> Response:
    row_id = _row_id(identity_id)

    def act(session: Session, actor: Actor) -> str:
        operations.do_attach_ins(
            session,
            identity_id=row_id,
            ins=ins,
            verified=verified == "on",
            actor=actor,
            reason=reason,
        )
        return "ins"

    return _act(
        request,
        entity_type="local_identity",
        entity_id=row_id,
        page_url=views.identity_href(row_id),
        csrf_token=csrf_token,
        form={"name": "ins", "ins": ins, "verified": verified == "on", "reason": reason},
        act=act,
        show=_show_identity,
    )


# --- search -------------------------------------------------------------------------------------


@router.get("/recherche")
def search_page(
    request: Request,
    nom: QueryText = None,
    prenom: QueryText = None,
    naissance: QueryText = None,
    ipp: QueryText = None,
    ins: QueryText = None,
) -> Response:
    user = _signed_in(request, current_path(request))
    if isinstance(user, Response):
        return user
    locale = request_locale(request)
    criteria = views.SearchCriteria(
        name=(nom or "").strip(),
        given=(prenom or "").strip(),
        born=(naissance or "").strip(),
        ipp=(ipp or "").strip(),
        ins=(ins or "").strip(),
    )
    results: list[views.IdentityView] = []
    more = False
    problem: str | None = None
    with transaction(get_platform(request).sessions) as session:
        decision = _may_read(session, user, "local_identity", None)
        if not criteria.is_empty:
            try:
                results, more = views.search_identities(session, criteria, locale)
            except views.InvalidCriteria as error:
                problem = gettext(locale, str(error))
            _audit_read(
                session,
                user,
                decision,
                action="searched",
                entity_type="local_identity",
                entity_id=None,
                shown=[(v.person_id, v.id) for v in results],
                detail={"criteria": criteria.used()},
            )
    return _page(
        request,
        user,
        "identity/_search.html",
        gettext(locale, N_("Search identities")),
        {"criteria": criteria, "results": results, "more": more, "problem": problem},
        section="search",
        status_code=422 if problem else 200,
    )
