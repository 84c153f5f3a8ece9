"""The queue of potential duplicates, and a review: link the pair, or mark it as not duplicates."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from partage.access.decision import NotFound
from partage.audit.actions import Actor
from partage.db import transaction
from partage.identity import operations
from partage.identity.models import Review, ReviewStatus
from partage.identity.service import IdentityError
from partage.web import identity_console as console
from partage.web import identity_review_views as reviews
from partage.web import identity_views as views
from partage.web.deps import get_platform
from partage.web.i18n import N_, gettext
from partage.web.identity_console import FormText, QueryText
from partage.web.pages import current_path, error_page, request_locale, row_id
from partage.web.session import PortalUser, signed_in

router = APIRouter()

PageToken = Annotated[str | None, Query(max_length=200)]


# --- the queue ----------------------------------------------------------------------------------


@router.get("/doublons")
def queue_page(request: Request, ordre: QueryText = None, apres: PageToken = None) -> Response:
    user = signed_in(request, current_path(request))
    if isinstance(user, Response):
        return user
    locale = request_locale(request)
    oldest = ordre == "anciennete"
    with transaction(get_platform(request).sessions) as session:
        decision = console.may_read(session, user, "review", None)
        try:
            queue = reviews.open_reviews(session, oldest=oldest, after=apres or None, locale=locale)
        except reviews.InvalidPage:
            return error_page(request, "invalid_request", 400)
        console.audit_read(
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
    return console.page(
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
        decision = console.may_read(session, user, "review", str(review_id))
        review = session.get(Review, review_id)
        view = reviews.review_view(session, review, locale) if review is not None else None
        if view is None:
            raise NotFound()
        console.audit_read(
            session,
            user,
            decision,
            action="review_viewed",
            entity_type="review",
            entity_id=str(review_id),
            shown=[(view.first.person_id, view.first.id), (view.second.person_id, view.second.id)],
        )
        next_review = reviews.next_open_review(session, excluding=review_id)
    return console.page(
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
    user = signed_in(request, current_path(request))
    if isinstance(user, Response):
        return user
    return _show_review(request, user, row_id(review_id), notice=console.notice(fait))


@router.post("/doublons/{review_id}/rattacher")
def link_review(
    request: Request,
    review_id: str,
    reason: FormText = "",
    csrf_token: FormText = "",
) -> Response:
    review_uuid = row_id(review_id)

    def act(session: Session, actor: Actor) -> str:
        operations.do_link_review(session, review_id=review_uuid, actor=actor, reason=reason)
        return "rattache"

    return console.action(
        request,
        entity_type="review",
        entity_id=review_uuid,
        page_url=views.review_href(review_uuid),
        csrf_token=csrf_token,
        form={"name": "link", "reason": reason},
        act=act,
        show=_show_review,
    )


@router.post("/doublons/{review_id}/pas-un-doublon")
def not_a_duplicate(
    request: Request,
    review_id: str,
    reason: FormText = "",
    csrf_token: FormText = "",
) -> Response:
    review_uuid = row_id(review_id)

    def act(session: Session, actor: Actor) -> str:
        review = session.get(Review, review_uuid)
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

    return console.action(
        request,
        entity_type="review",
        entity_id=review_uuid,
        page_url=views.review_href(review_uuid),
        csrf_token=csrf_token,
        form={"name": "not_duplicate", "reason": reason},
        act=act,
        show=_show_review,
    )
