"""Administration pages: accounts, applications, establishments.

Thin: the action functions check the access decision themselves (`NotFound` when denied,
shown as the same 404 page as something that does not exist) and write the audit rows.
Buttons work as plain forms; htmx, when present, swaps the changed row in place.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from partage.access.decision import Action, NotFound, decide, require
from partage.db import transaction
from partage.security import actions, service
from partage.security.actions import InvalidInput
from partage.security.models import Account, Establishment, EstablishmentKind, Profile
from partage.security.portal import PORTAL_CLIENT_ID
from partage.web import csrf
from partage.web.deps import get_platform
from partage.web.i18n import N_, gettext
from partage.web.pages import (
    error_page,
    is_htmx,
    render,
    render_fragment,
    request_locale,
    row_id,
    see_other,
)
from partage.web.problems import explain
from partage.web.profiles import ESTABLISHMENT_KIND_LABELS, PROFILE_LABELS
from partage.web.session import PortalUser, signed_in

_Choice = TypeVar("_Choice", bound=StrEnum)

router = APIRouter(prefix="/admin", tags=["administration"])

FormText = Annotated[str, Form(max_length=4096)]
QueryText = Annotated[str | None, Query(max_length=200)]

DONE_MESSAGES = {
    "created": N_("The account has been created."),
    "disabled": N_("The account has been disabled; its sessions have ended."),
    "enabled": N_("The account has been enabled."),
    "unlocked": N_("The account has been unlocked."),
    "revoked": N_("The application has been revoked; its tokens no longer work."),
    "establishment": N_("The establishment has been created."),
}
# Operation on an account -> what the page says once it is done.
ACCOUNT_OPERATIONS = {"disable": "disabled", "enable": "enabled", "unlock": "unlocked"}
MSG_CHOOSE_PROFILE = N_("Choose a profile.")
MSG_CHOOSE_KIND = N_("Choose the kind of establishment.")


def _csrf_refused(request: Request, user: PortalUser, submitted: str) -> Response | None:
    if csrf.session_csrf_ok(request, user.csrf_token, submitted):
        return None
    return error_page(request, "csrf", 403)


def _form_establishments(session: Session, user: PortalUser) -> list[Establishment]:
    """The establishments an administrator may attach an account to."""
    everything = service.list_establishments(session)
    if user.is_territory_admin:
        return everything
    return [e for e in everything if e.id == user.establishment_id]


def _creatable_profiles(user: PortalUser) -> list[Profile]:
    if user.is_territory_admin:
        return list(Profile)
    return [p for p in Profile if p is not Profile.territory_admin]


def _choice(enum: type[_Choice], value: str) -> _Choice | None:
    try:
        return enum(value)
    except ValueError:
        return None


# --- accounts --------------------------------------------------------------------------


def _accounts_context(
    session: Session, user: PortalUser, *, query: str, form: dict[str, str] | None = None
) -> dict[str, Any]:
    principal = user.principal
    require(
        session,
        principal,
        Action.account_read,
        entity_type="Account",
        establishment_id=principal.establishment_id,
    )
    accounts = service.list_accounts(session, viewer=principal, query=query)
    return {
        "accounts": accounts,
        "locked": service.locked_logins(session, logins=[a.login for a in accounts]),
        "query": query,
        "profiles": _creatable_profiles(user),
        "profile_labels": PROFILE_LABELS,
        "establishments": _form_establishments(session, user),
        "form": form or {},
        "can_manage": decide(
            principal, Action.account_manage, establishment_id=principal.establishment_id
        ).allowed,
    }


@router.get("/accounts")
def accounts_page(request: Request, q: QueryText = None, done: QueryText = None) -> Response:
    user = signed_in(request, "/admin/accounts")
    if isinstance(user, Response):
        return user
    platform = get_platform(request)
    with transaction(platform.sessions) as session:
        context = _accounts_context(session, user, query=(q or "").strip())
    context["notice"] = DONE_MESSAGES.get(done or "")
    context["password_min_length"] = platform.settings.password_min_length
    return render(request, "admin/accounts.html", context, user=user)


@router.post("/accounts")
def create_account(
    request: Request,
    csrf_token: FormText = "",
    login: FormText = "",
    display_name: FormText = "",
    profile: FormText = "",
    establishment: FormText = "",
    email: FormText = "",
    national_id: FormText = "",
    password: FormText = "",
) -> Response:
    user = signed_in(request, "/admin/accounts")
    if isinstance(user, Response):
        return user
    if (refused := _csrf_refused(request, user, csrf_token)) is not None:
        return refused
    platform = get_platform(request)
    problem: str | None = None
    locale = request_locale(request)
    chosen_profile = _choice(Profile, profile)
    if chosen_profile is None:
        problem = gettext(locale, MSG_CHOOSE_PROFILE)
    else:
        with transaction(platform.sessions) as session:
            chosen = (
                service.get_establishment(session, code=establishment) if establishment else None
            )
            if establishment and chosen is None:
                raise NotFound()
            try:
                actions.create_account(
                    session,
                    platform.passwords,
                    actor=user.principal,
                    login=login,
                    display_name=display_name,
                    profile=chosen_profile,
                    password=password,
                    establishment=chosen,
                    email=email.strip() or None,
                    national_id=national_id.strip() or None,
                )
            except InvalidInput as exc:
                session.rollback()
                problem = explain(locale, exc)
    if problem is None:
        return see_other("/admin/accounts?done=created")
    with transaction(platform.sessions) as session:
        form = {
            "login": login,
            "display_name": display_name,
            "profile": profile,
            "establishment": establishment,
            "email": email,
            "national_id": national_id,
        }
        context = _accounts_context(session, user, query="", form=form)
    context["problem"] = problem
    context["password_min_length"] = platform.settings.password_min_length
    return render(request, "admin/accounts.html", context, user=user, status_code=422)


@router.post("/accounts/{account_id}/{operation}")
def account_operation(
    request: Request, account_id: str, operation: str, csrf_token: FormText = ""
) -> Response:
    user = signed_in(request, "/admin/accounts")
    if isinstance(user, Response):
        return user
    if operation not in ACCOUNT_OPERATIONS:
        raise NotFound()
    if (refused := _csrf_refused(request, user, csrf_token)) is not None:
        return refused
    platform = get_platform(request)
    with transaction(platform.sessions) as session:
        account = service.get_account_by_id(session, account_id=row_id(account_id))
        if account is None:
            raise NotFound()
        if operation == "unlock":
            actions.unlock_account(session, actor=user.principal, account=account)
        else:
            actions.set_account_status(
                session, actor=user.principal, account=account, active=operation == "enable"
            )
        row = (
            _account_row(
                session, user, account, announce=DONE_MESSAGES[ACCOUNT_OPERATIONS[operation]]
            )
            if is_htmx(request)
            else None
        )
    if row is None:
        return see_other(f"/admin/accounts?done={ACCOUNT_OPERATIONS[operation]}")
    return render_fragment(request, "admin/_account_row.html", row)


def _account_row(
    session: Session, user: PortalUser, account: Account, *, announce: str
) -> dict[str, Any]:
    session.flush()
    return {
        "account": account,
        "locked": service.locked_logins(session, logins=[account.login]),
        "profile_labels": PROFILE_LABELS,
        "csrf_token": user.csrf_token,
        "can_manage": True,
        "user": user,
        "announce": announce,
    }


# --- applications ----------------------------------------------------------------------


def _clients_context(session: Session, user: PortalUser) -> dict[str, Any]:
    principal = user.principal
    require(
        session,
        principal,
        Action.client_read,
        entity_type="OAuthClient",
        establishment_id=principal.establishment_id,
    )
    return {
        "clients": service.list_clients(session, viewer=principal),
        "portal_client_id": PORTAL_CLIENT_ID,
        "establishments": _form_establishments(session, user),
        "can_manage": decide(principal, Action.client_manage).allowed,
        "form": {},
    }


@router.get("/clients")
def clients_page(request: Request, done: QueryText = None) -> Response:
    user = signed_in(request, "/admin/clients")
    if isinstance(user, Response):
        return user
    platform = get_platform(request)
    with transaction(platform.sessions) as session:
        context = _clients_context(session, user)
    context["notice"] = DONE_MESSAGES.get(done or "")
    return render(request, "admin/clients.html", context, user=user)


@router.post("/clients")
def create_client(
    request: Request,
    csrf_token: FormText = "",
    name: FormText = "",
    scopes: FormText = "",
    redirect_uris: FormText = "",
    public: FormText = "",
    establishment: FormText = "",
) -> Response:
    user = signed_in(request, "/admin/clients")
    if isinstance(user, Response):
        return user
    if (refused := _csrf_refused(request, user, csrf_token)) is not None:
        return refused
    platform = get_platform(request)
    problem: str | None = None
    created: dict[str, Any] | None = None
    with transaction(platform.sessions) as session:
        chosen = service.get_establishment(session, code=establishment) if establishment else None
        if establishment and chosen is None:
            raise NotFound()
        try:
            new = actions.create_client(
                session,
                platform.keyring,
                actor=user.principal,
                name=name,
                scopes=scopes,
                redirect_uris=redirect_uris.split(),
                public=public == "on",
                establishment=chosen,
            )
            created = {
                "client_id": new.client.client_id,
                "name": new.client.name,
                "auth_method": new.client.token_endpoint_auth_method,
                "client_secret": new.client_secret,
            }
        except InvalidInput as exc:
            session.rollback()
            problem = explain(request_locale(request), exc)
    with transaction(platform.sessions) as session:
        context = _clients_context(session, user)
    if problem is not None:
        context["problem"] = problem
        context["form"] = {
            "name": name,
            "scopes": scopes,
            "redirect_uris": redirect_uris,
            "public": public,
            "establishment": establishment,
        }
        return render(request, "admin/clients.html", context, user=user, status_code=422)
    # The secret is shown in this response only; it is stored as a keyed hash.
    context["created"] = created
    return render(request, "admin/clients.html", context, user=user, status_code=201)


@router.post("/clients/{client_id}/revoke")
def revoke_client(request: Request, client_id: str, csrf_token: FormText = "") -> Response:
    user = signed_in(request, "/admin/clients")
    if isinstance(user, Response):
        return user
    if (refused := _csrf_refused(request, user, csrf_token)) is not None:
        return refused
    platform = get_platform(request)
    with transaction(platform.sessions) as session:
        client = service.get_client(session, client_id=client_id[:64])
        if client is None:
            raise NotFound()
        actions.revoke_client(session, actor=user.principal, client=client)
        row = (
            {
                "client": client,
                "csrf_token": user.csrf_token,
                "can_manage": True,
                "portal_client_id": PORTAL_CLIENT_ID,
                "announce": DONE_MESSAGES["revoked"],
            }
            if is_htmx(request)
            else None
        )
    if row is None:
        return see_other("/admin/clients?done=revoked")
    return render_fragment(request, "admin/_client_row.html", row)


# --- establishments --------------------------------------------------------------------


def _establishments_context(session: Session, user: PortalUser) -> dict[str, Any]:
    principal = user.principal
    require(session, principal, Action.establishment_read, entity_type="Establishment")
    return {
        "establishments": service.list_establishments(session),
        "kinds": list(EstablishmentKind),
        "kind_labels": ESTABLISHMENT_KIND_LABELS,
        "can_manage": decide(principal, Action.establishment_manage).allowed,
        "form": {},
    }


@router.get("/establishments")
def establishments_page(request: Request, done: QueryText = None) -> Response:
    user = signed_in(request, "/admin/establishments")
    if isinstance(user, Response):
        return user
    platform = get_platform(request)
    with transaction(platform.sessions) as session:
        context = _establishments_context(session, user)
    context["notice"] = DONE_MESSAGES.get(done or "")
    return render(request, "admin/establishments.html", context, user=user)


@router.post("/establishments")
def create_establishment(
    request: Request,
    csrf_token: FormText = "",
    name: FormText = "",
    code: FormText = "",
    kind: FormText = "",
    finess: FormText = "",
    oid: FormText = "",
    city: FormText = "",
) -> Response:
    user = signed_in(request, "/admin/establishments")
    if isinstance(user, Response):
        return user
    if (refused := _csrf_refused(request, user, csrf_token)) is not None:
        return refused
    platform = get_platform(request)
    settings = platform.settings
    problem: str | None = None
    chosen_kind = _choice(EstablishmentKind, kind)
    if chosen_kind is None:
        problem = gettext(request_locale(request), MSG_CHOOSE_KIND)
    else:
        with transaction(platform.sessions) as session:
            # The establishment belongs to this platform's territory (made on first use).
            territory = actions.ensure_territory(
                session, code=settings.territory_code, name=settings.territory_name
            )
            try:
                actions.create_establishment(
                    session,
                    actor=user.principal,
                    territory=territory,
                    name=name,
                    code=code,
                    kind=chosen_kind,
                    finess=finess.strip() or None,
                    oid=oid.strip() or None,
                    city=city.strip() or None,
                )
            except InvalidInput as exc:
                session.rollback()
                problem = explain(request_locale(request), exc)
    if problem is None:
        return see_other("/admin/establishments?done=establishment")
    with transaction(platform.sessions) as session:
        context = _establishments_context(session, user)
    context["problem"] = problem
    context["form"] = {
        "name": name,
        "code": code,
        "kind": kind,
        "finess": finess,
        "oid": oid,
        "city": city,
    }
    return render(request, "admin/establishments.html", context, user=user, status_code=422)
