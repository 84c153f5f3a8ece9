"""A local identity: its traits, history and reviews; change its status, attach its INS."""

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
from partage.identity.models import LocalIdentity
from partage.identity.store import ATTRIBUTES
from partage.identity.traits import IdentityStatus
from partage.web import identity_console as console
from partage.web import identity_views as views
from partage.web.deps import get_platform
from partage.web.i18n import N_, gettext
from partage.web.identity_console import FormList, FormText, QueryText
from partage.web.identity_history_views import identity_history
from partage.web.identity_review_views import reviews_of_identity
from partage.web.pages import current_path, request_locale, row_id
from partage.web.session import PortalUser, signed_in

router = APIRouter()

MSG_CHOOSE_STATUS = N_("Choose a status.")


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
        decision = console.may_read(session, user, "local_identity", str(identity_id))
        row = session.get(LocalIdentity, identity_id)
        if row is None:
            raise NotFound()
        view = views.identity_views(session, [row], locale)[0]
        links, events = identity_history(session, identity_id, locale)
        reviews = reviews_of_identity(session, identity_id, locale)
        console.audit_read(
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
    return console.page(
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
    user = signed_in(request, current_path(request))
    if isinstance(user, Response):
        return user
    return _show_identity(request, user, row_id(identity_id), notice=console.notice(fait))


@router.post("/identites/{identity_id}/statut")
def change_status(
    request: Request,
    identity_id: str,
    status: FormText = "",
    attributes: FormList = None,
    reason: FormText = "",
    csrf_token: FormText = "",
) -> Response:
    identity_uuid = row_id(identity_id)
    chosen = next((s for s in IdentityStatus if s.value == status), None)
    checked = [name for name in (attributes or []) if name in ATTRIBUTES]

    def check(session: Session) -> str | None:
        return None if chosen is not None else MSG_CHOOSE_STATUS

    def act(session: Session, actor: Actor) -> str:
        assert chosen is not None  # checked
        operations.do_change_status(
            session,
            identity_id=identity_uuid,
            status=chosen,
            attributes=frozenset(checked),
            actor=actor,
            reason=reason,
        )
        return "statut"

    return console.action(
        request,
        entity_type="local_identity",
        entity_id=identity_uuid,
        page_url=views.identity_href(identity_uuid),
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
    identity_uuid = row_id(identity_id)

    def act(session: Session, actor: Actor) -> str:
        operations.do_attach_ins(
            session,
            identity_id=identity_uuid,
            ins=ins,
            verified=verified == "on",
            actor=actor,
            reason=reason,
        )
        return "ins"

    return console.action(
        request,
        entity_type="local_identity",
        entity_id=identity_uuid,
        page_url=views.identity_href(identity_uuid),
        csrf_token=csrf_token,
        form={"name": "ins", "ins": ins, "verified": verified == "on", "reason": reason},
        act=act,
        show=_show_identity,
    )
