"""History: link periods and events, as the person page and a local identity's page show
them; and the person page itself (a territorial person's identities and their history)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from partage.identity.models import (
    IdentityEvent,
    Link,
    LinkMethod,
    LocalIdentity,
    Person,
    PersonStatus,
)
from partage.web.directory_views import date_time
from partage.web.i18n import N_, gettext
from partage.web.identity_views import (
    HISTORY_LIMIT,
    IdentityView,
    author_label,
    identity_href,
    identity_views,
    labels_of,
    number,
    person_href,
    shown_ins,
)

METHOD_LABELS: dict[str, str] = {
    LinkMethod.origin: N_("Own person (creation)"),
    LinkMethod.qualified_ins: N_("Same qualified INS"),
    LinkMethod.probabilistic: N_("Automatic (score)"),
    LinkMethod.manual: N_("Manual"),
    LinkMethod.a40: N_("Merged by the establishment (A40)"),
    LinkMethod.unmerge: N_("Unmerge"),
}
EVENT_LABELS: dict[str, str] = {
    "created": N_("Identity received"),
    "updated": N_("Updated by the establishment"),
    "persons_merged": N_("Persons merged"),
    "not_duplicate": N_("Marked as not a duplicate"),
    "unmerged": N_("Link undone (unmerge)"),
    "ins_attached": N_("INS attached"),
    "status_changed": N_("Status changed"),
    "local_merged": N_("Merged by the establishment (A40)"),
}


# --- history: link periods and events -------------------------------------------------------


@dataclass(frozen=True)
class Detail:
    label: str
    value: str
    href: str | None = None


@dataclass(frozen=True)
class LinkRow:
    identity: str
    identity_href: str
    person_id: uuid.UUID
    method: str
    score: str | None
    author: str
    reason: str | None
    started: str | None
    ended: str | None
    ended_reason: str | None
    current: bool

    @property
    def person_href(self) -> str:
        return person_href(self.person_id)


@dataclass(frozen=True)
class EventRow:
    when: str | None
    kind: str
    identity: str | None
    identity_href: str | None
    author: str
    reason: str | None
    details: list[Detail] = field(default_factory=list)


def link_rows(session: Session, links: Sequence[Link], locale: str) -> list[LinkRow]:
    labels = labels_of(session, (link.local_identity_id for link in links))
    return [
        LinkRow(
            identity=labels.get(link.local_identity_id, str(link.local_identity_id)),
            identity_href=identity_href(link.local_identity_id),
            person_id=link.person_id,
            method=gettext(locale, METHOD_LABELS.get(link.method, link.method)),
            score=number(link.score, locale) if link.score is not None else None,
            author=author_label(link.author),
            reason=link.reason,
            started=date_time(link.started_at, locale),
            ended=date_time(link.ended_at, locale),
            ended_reason=link.ended_reason,
            current=link.ended_at is None,
        )
        for link in links
    ]


def _uuid(value: object) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


def _event_details(
    event: IdentityEvent, locale: str, labels: Mapping[uuid.UUID, str]
) -> list[Detail]:
    def t(message: str) -> str:
        return gettext(locale, message)

    detail = event.detail or {}
    found: list[Detail] = []
    if event.kind == "persons_merged":
        absorbed = _uuid(detail.get("absorbed"))
        if absorbed:
            found.append(Detail(t(N_("Absorbed person")), str(absorbed), person_href(absorbed)))
        method = str(detail.get("method", ""))
        if method:
            found.append(Detail(t(N_("Method")), t(METHOD_LABELS.get(method, method))))
        identities = detail.get("identities")
        if isinstance(identities, list):
            found.append(Detail(t(N_("Identities moved")), str(len(identities))))
        if isinstance(detail.get("score"), int | float):
            found.append(Detail(t(N_("Score")), number(float(detail["score"]), locale)))
    elif event.kind == "not_duplicate":
        other = _uuid(detail.get("other"))
        if other:
            found.append(
                Detail(t(N_("Other identity")), labels.get(other, str(other)), identity_href(other))
            )
    elif event.kind == "unmerged":
        origin = _uuid(detail.get("from_person"))
        if origin:
            found.append(Detail(t(N_("Left the person")), str(origin), person_href(origin)))
        if event.person_id:
            found.append(
                Detail(t(N_("Now in")), str(event.person_id), person_href(event.person_id))
            )
    elif event.kind == "local_merged":
        into = _uuid(detail.get("into"))
        if into:
            found.append(Detail(t(N_("Into")), labels.get(into, str(into)), identity_href(into)))
    elif event.kind in ("status_changed", "ins_attached"):
        before = detail.get("before")
        if isinstance(before, dict) and before.get("status"):
            found.append(Detail(t(N_("Status before")), str(before["status"])))
        if isinstance(before, dict) and before.get("ins"):
            found.append(Detail(t(N_("INS before")), shown_ins(str(before["ins"]))))
    elif event.kind == "updated":
        changed = detail.get("changed")
        if isinstance(changed, list):
            found.append(Detail(t(N_("Fields changed")), ", ".join(str(c) for c in changed)))
    elif event.kind == "created" and detail.get("status"):
        found.append(Detail(t(N_("Identity status")), str(detail["status"])))
    return found


def event_rows(session: Session, events: Sequence[IdentityEvent], locale: str) -> list[EventRow]:
    referenced: set[uuid.UUID] = set()
    for event in events:
        if event.local_identity_id:
            referenced.add(event.local_identity_id)
        for key in ("other", "into"):
            other = _uuid((event.detail or {}).get(key))
            if other:
                referenced.add(other)
    labels = labels_of(session, referenced)
    return [
        EventRow(
            when=date_time(event.occurred_at, locale),
            kind=gettext(locale, EVENT_LABELS.get(event.kind, event.kind)),
            identity=labels.get(event.local_identity_id) if event.local_identity_id else None,
            identity_href=identity_href(event.local_identity_id)
            if event.local_identity_id
            else None,
            author=author_label(event.author),
            reason=event.reason,
            details=_event_details(event, locale, labels),
        )
        for event in events
    ]


# --- a person -------------------------------------------------------------------------------


@dataclass(frozen=True)
class PersonView:
    id: uuid.UUID
    active: bool
    merged_into: uuid.UUID | None
    created: str | None
    updated: str | None
    identities: list[IdentityView]
    links: list[LinkRow]
    events: list[EventRow]

    @property
    def href(self) -> str:
        return person_href(self.id)

    @property
    def merged_into_href(self) -> str | None:
        return person_href(self.merged_into) if self.merged_into else None

    @property
    def can_unmerge(self) -> bool:
        return self.active and sum(1 for i in self.identities if i.active) > 1


def person_view(session: Session, person: Person, locale: str) -> PersonView:
    members = list(
        session.scalars(
            select(LocalIdentity)
            .where(LocalIdentity.person_id == person.id)
            .order_by(LocalIdentity.created_at, LocalIdentity.id)
        )
    )
    member_ids = [m.id for m in members]
    link_filter = Link.person_id == person.id
    event_filter = IdentityEvent.person_id == person.id
    if member_ids:
        link_filter = or_(link_filter, Link.local_identity_id.in_(member_ids))
        event_filter = or_(event_filter, IdentityEvent.local_identity_id.in_(member_ids))
    links = list(
        session.scalars(
            select(Link)
            .where(link_filter)
            .order_by(Link.started_at.desc(), Link.id)
            .limit(HISTORY_LIMIT)
        )
    )
    events = list(
        session.scalars(
            select(IdentityEvent)
            .where(event_filter)
            .order_by(IdentityEvent.occurred_at.desc(), IdentityEvent.id)
            .limit(HISTORY_LIMIT)
        )
    )
    return PersonView(
        id=person.id,
        active=person.status == PersonStatus.active,
        merged_into=person.merged_into_id,
        created=date_time(person.created_at, locale),
        updated=date_time(person.updated_at, locale),
        identities=identity_views(session, members, locale),
        links=link_rows(session, links, locale),
        events=event_rows(session, events, locale),
    )


# --- a local identity -----------------------------------------------------------------------


def identity_history(
    session: Session, identity_id: uuid.UUID, locale: str
) -> tuple[list[LinkRow], list[EventRow]]:
    links = list(
        session.scalars(
            select(Link)
            .where(Link.local_identity_id == identity_id)
            .order_by(Link.started_at.desc(), Link.id)
            .limit(HISTORY_LIMIT)
        )
    )
    events = list(
        session.scalars(
            select(IdentityEvent)
            .where(IdentityEvent.local_identity_id == identity_id)
            .order_by(IdentityEvent.occurred_at.desc(), IdentityEvent.id)
            .limit(HISTORY_LIMIT)
        )
    )
    return link_rows(session, links, locale), event_rows(session, events, locale)
