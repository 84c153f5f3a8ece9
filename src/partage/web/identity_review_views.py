"""The queue of potential duplicates, and a review: the two identities side by side.

The score of a pair, explained trait by trait, is drawn by `identity_score_views`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from partage.identity.ins import normalize_ins
from partage.identity.models import LocalIdentity, Review, ReviewStatus
from partage.identity.normalize import address_form, compact, digits, fold
from partage.web.directory_views import date_time
from partage.web.i18n import N_, gettext
from partage.web.identity_score_views import ScoreExplanation, score_explanation
from partage.web.identity_views import (
    HISTORY_LIMIT,
    IdentityView,
    author_label,
    identity_href,
    identity_views,
    labels_of,
    number,
    percent,
    review_href,
)

QUEUE_PAGE = 25

REVIEW_STATUS_LABELS: dict[str, str] = {
    ReviewStatus.open: N_("To review"),
    ReviewStatus.linked: N_("Linked: same person"),
    ReviewStatus.not_duplicate: N_("Not a duplicate"),
    ReviewStatus.superseded: N_("Superseded"),
}


# --- the queue ------------------------------------------------------------------------------


class InvalidPage(ValueError):
    """A page token this queue did not write."""


@dataclass(frozen=True)
class QueueRow:
    id: uuid.UUID
    score: str
    probability: str
    proposed: str | None
    first: IdentityView
    second: IdentityView

    @property
    def href(self) -> str:
        return review_href(self.id)


@dataclass(frozen=True)
class QueuePage:
    rows: list[QueueRow]
    total: int
    next_token: str | None


def _queue_order(oldest: bool) -> tuple[Any, ...]:
    if oldest:
        return (Review.created_at.asc(), Review.id.asc())
    return (Review.score.desc(), Review.id.asc())


def _after(token: str, oldest: bool) -> Any:
    """The condition for the rows after a page token: "<score or time>_<review id>"."""
    value, _, row_id = token.rpartition("_")
    try:
        last_id = uuid.UUID(row_id)
        if oldest:
            moment = datetime.fromisoformat(value)
            if moment.tzinfo is None:
                raise ValueError("naive")
            return or_(
                Review.created_at > moment,
                and_(Review.created_at == moment, Review.id > last_id),
            )
        score = float(value)
    except ValueError:
        raise InvalidPage(token) from None
    return or_(Review.score < score, and_(Review.score == score, Review.id > last_id))


def _token(review: Review, oldest: bool) -> str:
    value = review.created_at.isoformat() if oldest else repr(float(review.score))
    return f"{value}_{review.id}"


def open_reviews(
    session: Session, *, oldest: bool, after: str | None, locale: str, size: int = QUEUE_PAGE
) -> QueuePage:
    statement = select(Review).where(Review.status == ReviewStatus.open)
    if after:
        statement = statement.where(_after(after, oldest))
    reviews = list(session.scalars(statement.order_by(*_queue_order(oldest)).limit(size + 1)))
    more = len(reviews) > size
    reviews = reviews[:size]
    total = session.scalar(
        select(func.count()).select_from(Review).where(Review.status == ReviewStatus.open)
    )
    ids = {i for r in reviews for i in (r.first_id, r.second_id)}
    rows = list(session.scalars(select(LocalIdentity).where(LocalIdentity.id.in_(ids))))
    views = {v.id: v for v in identity_views(session, rows, locale)}
    return QueuePage(
        rows=[
            QueueRow(
                id=r.id,
                score=number(r.score, locale),
                probability=percent(float(r.explanation.get("probability", 0.0)), locale),
                proposed=date_time(r.created_at, locale),
                first=views[r.first_id],
                second=views[r.second_id],
            )
            for r in reviews
            if r.first_id in views and r.second_id in views
        ],
        total=int(total or 0),
        next_token=_token(reviews[-1], oldest) if more and reviews else None,
    )


def next_open_review(session: Session, *, excluding: uuid.UUID | None = None) -> uuid.UUID | None:
    """The review at the top of the queue (highest score), to go on with."""
    statement = select(Review.id).where(Review.status == ReviewStatus.open)
    if excluding is not None:
        statement = statement.where(Review.id != excluding)
    return session.scalar(statement.order_by(*_queue_order(False)).limit(1))


# --- a review: the two identities side by side -----------------------------------------------


@dataclass(frozen=True)
class TraitRow:
    label: str
    first: str
    second: str
    # same | different | one_side | empty | info (not compared: establishment, IPP)
    state: str
    strict: bool = False
    first_href: str | None = None
    second_href: str | None = None
    note: str | None = None  # what the comparison column says instead of the state

    @property
    def differs(self) -> bool:
        return self.state == "different"


@dataclass(frozen=True)
class ReviewView:
    id: uuid.UUID
    status: str
    status_label: str
    open: bool
    proposed: str | None
    resolved: str | None
    resolved_by: str | None
    reason: str | None
    first: IdentityView
    second: IdentityView
    rows: list[TraitRow]
    differences: int
    same_person: bool
    explanation: ScoreExplanation

    @property
    def href(self) -> str:
        return review_href(self.id)


def _state(first: str, second: str, same: bool) -> str:
    if not first and not second:
        return "empty"
    if not first or not second:
        return "one_side"
    return "same" if same else "different"


def _row(label: str, first: str, second: str, key: Callable[[str], str], **kw: Any) -> TraitRow:
    return TraitRow(label, first, second, _state(first, second, key(first) == key(second)), **kw)


def _status_text(view: IdentityView, locale: str) -> str:
    parts = [f"{view.status} · {view.status_label}", *view.attributes]
    if not view.active:
        parts.append(gettext(locale, N_("Retired by its establishment (A40)")))
    return " · ".join(parts)


def trait_rows(a: IdentityView, b: IdentityView, locale: str) -> list[TraitRow]:
    def t(message: str) -> str:
        return gettext(locale, message)

    same_status = (a.status, a.attributes, a.active) == (b.status, b.attributes, b.active)
    same_person = a.person_id == b.person_id

    def person(view: IdentityView) -> str:
        return t(N_("%(id)s · identities: %(count)s")) % {
            "id": str(view.person_id)[:8],
            "count": view.person_identities,
        }

    return [
        _row(
            t(N_("Birth family name")),
            a.birth_family_name,
            b.birth_family_name,
            compact,
            strict=True,
        ),
        _row(t(N_("Used name")), a.used_family_name, b.used_family_name, compact),
        _row(t(N_("Given names")), a.given_names, b.given_names, fold, strict=True),
        _row(t(N_("Sex")), a.sex_label, b.sex_label, str, strict=True),
        _row(t(N_("Birth date")), a.birth_date, b.birth_date, str, strict=True),
        _row(
            t(N_("Birth place (INSEE code)")), a.birth_place, b.birth_place, str.upper, strict=True
        ),
        _row(t(N_("Address")), a.address, b.address, address_form),
        _row(t(N_("Phone")), a.phone, b.phone, digits),
        _row(t(N_("INS")), a.ins, b.ins, normalize_ins),
        TraitRow(
            t(N_("Identity status")),
            _status_text(a, locale),
            _status_text(b, locale),
            "same" if same_status else "different",
        ),
        TraitRow(
            t(N_("Establishment")),
            a.establishment,
            b.establishment,
            "info",
            note=t(N_("Same establishment"))
            if a.establishment_code == b.establishment_code
            else None,
        ),
        TraitRow(
            t(N_("IPP")),
            a.local_id,
            b.local_id,
            "info",
            first_href=a.href,
            second_href=b.href,
        ),
        TraitRow(
            t(N_("Person")),
            person(a),
            person(b),
            "same" if same_person else "info",
            first_href=a.person_href,
            second_href=b.person_href,
            note=t(N_("Same person")) if same_person else t(N_("Two persons")),
        ),
    ]


def get_review(session: Session, review_id: uuid.UUID) -> Review | None:
    return session.get(Review, review_id)


def review_view(session: Session, review: Review, locale: str) -> ReviewView | None:
    rows = list(
        session.scalars(
            select(LocalIdentity).where(LocalIdentity.id.in_((review.first_id, review.second_id)))
        )
    )
    views = {v.id: v for v in identity_views(session, rows, locale)}
    first, second = views.get(review.first_id), views.get(review.second_id)
    if first is None or second is None:
        return None
    traits = trait_rows(first, second, locale)
    return ReviewView(
        id=review.id,
        status=review.status,
        status_label=gettext(locale, REVIEW_STATUS_LABELS.get(review.status, review.status)),
        open=review.status == ReviewStatus.open,
        proposed=date_time(review.created_at, locale),
        resolved=date_time(review.resolved_at, locale),
        resolved_by=author_label(review.resolved_by) if review.resolved_by else None,
        reason=review.reason,
        first=first,
        second=second,
        rows=traits,
        differences=sum(1 for row in traits if row.differs),
        same_person=first.person_id == second.person_id,
        explanation=score_explanation(review.explanation or {}, review.score, locale),
    )


def reviews_of_identity(
    session: Session, identity_id: uuid.UUID, locale: str
) -> list[dict[str, Any]]:
    rows = list(
        session.scalars(
            select(Review)
            .where(or_(Review.first_id == identity_id, Review.second_id == identity_id))
            .order_by(Review.created_at.desc())
            .limit(HISTORY_LIMIT)
        )
    )
    others = {r.id: r.second_id if r.first_id == identity_id else r.first_id for r in rows}
    labels = labels_of(session, others.values())
    return [
        {
            "href": review_href(r.id),
            "other": labels.get(others[r.id], str(others[r.id])),
            "other_href": identity_href(others[r.id]),
            "status": gettext(locale, REVIEW_STATUS_LABELS.get(r.status, r.status)),
            "open": r.status == ReviewStatus.open,
            "score": number(r.score, locale),
            "proposed": date_time(r.created_at, locale),
        }
        for r in rows
    ]
