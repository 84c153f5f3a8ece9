"""A territorial person: its identities and their history; merge two persons, unmerge an
identity."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from partage.access.decision import NotFound
from partage.audit.actions import Actor
from partage.db import transaction
from partage.identity import operations
from partage.identity.models import LocalIdentity, Person
from partage.web import identity_console as console
from partage.web import identity_views as views
from partage.web.deps import get_platform
from partage.web.i18n import N_, gettext
from partage.web.identity_console import FormText, QueryText
from partage.web.identity_history_views import person_view
from partage.web.pages import current_path, request_locale, row_id
from partage.web.session import PortalUser, signed_in

router = APIRouter()

MSG_OTHER_PERSON = N_("Enter the identifier of the other person, as shown on its page.")
MSG_NOT_HERE = N_("This identity no longer belongs to this person: reload the page.")


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
        decision = console.may_read(session, user, "person", str(person_id))
        person = session.get(Person, person_id)
        if person is None:
            raise NotFound()
        view = person_view(session, person, locale)
        console.audit_read(
            session,
            user,
            decision,
            action="person_viewed",
            entity_type="person",
            entity_id=str(person_id),
            shown=[(person_id, i.id) for i in view.identities],
            person_id=person_id,
        )
    return console.page(
        request,
        user,
        "identity/_person.html",
        gettext(locale, N_("Territorial person")),
        {"person": view, "notice": notice, "problem": problem, "form": form or {}},
        status_code=status_code,
    )


@router.get("/personnes/{person_id}")
def person_page(request: Request, person_id: str, fait: QueryText = None) -> Response:
    user = signed_in(request, current_path(request))
    if isinstance(user, Response):
        return user
    return _show_person(request, user, row_id(person_id), notice=console.notice(fait))


@router.post("/personnes/{person_id}/defusionner")
def unmerge(
    request: Request,
    person_id: str,
    identity: FormText = "",
    reason: FormText = "",
    csrf_token: FormText = "",
) -> Response:
    person_uuid = row_id(person_id)
    try:
        identity_id: uuid.UUID | None = uuid.UUID(identity)
    except ValueError:
        identity_id = None

    def check(session: Session) -> str | None:
        found = session.get(LocalIdentity, identity_id) if identity_id else None
        return None if found is not None and found.person_id == person_uuid else MSG_NOT_HERE

    def act(session: Session, actor: Actor) -> str:
        assert identity_id is not None  # checked
        operations.do_unmerge(session, identity_id=identity_id, actor=actor, reason=reason)
        return "defusionne"

    return console.action(
        request,
        entity_type="person",
        entity_id=person_uuid,
        page_url=views.person_href(person_uuid),
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
    person_uuid = row_id(person_id)
    try:
        other_id: uuid.UUID | None = uuid.UUID(other.strip())
    except ValueError:
        other_id = None

    def check(session: Session) -> str | None:
        return None if other_id is not None else MSG_OTHER_PERSON

    def act(session: Session, actor: Actor) -> str:
        assert other_id is not None  # checked
        operations.do_merge_persons(
            session, kept_id=person_uuid, absorbed_id=other_id, actor=actor, reason=reason
        )
        return "fusionne"

    return console.action(
        request,
        entity_type="person",
        entity_id=person_uuid,
        page_url=views.person_href(person_uuid),
        csrf_token=csrf_token,
        form={"name": "merge", "other": other, "reason": reason},
        act=act,
        show=_show_person,
        check=check,
    )
