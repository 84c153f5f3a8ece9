"""The portal: its return from the provider, the home page, the person's own security."""

from __future__ import annotations

import hmac
from typing import Annotated, Any

from babel.dates import format_date
from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import Response

from partage.db import transaction
from partage.security import authn, passkeys, portal, service
from partage.security.oauth import OAuthError, grant_authorization_code
from partage.web import csrf
from partage.web.auth_pages import MSG_BAD_CODE, enrolment_context, pending_totp
from partage.web.deps import get_platform
from partage.web.i18n import N_
from partage.web.pages import (
    drop_cookie,
    error_page,
    render,
    request_locale,
    see_other,
    set_private_cookie,
)
from partage.web.profiles import HOME_TILES, PROFILE_LABELS
from partage.web.session import (
    FLOW_COOKIE_PATH,
    current_user,
    flow_cookie_name,
    portal_cookie_name,
    sign_in_redirect,
)

router = APIRouter(tags=["portal"])

QueryText = Annotated[str | None, Query(max_length=4096)]
FormText = Annotated[str, Form(max_length=200)]
MSG_TOTP_ENROLLED = N_("Your authenticator app is now set up.")
_SECURITY_NOTICES = {
    "totp": MSG_TOTP_ENROLLED,
    "passkey": N_("Your security key or passkey has been added."),
    "passkey-failed": N_("The security key or passkey could not be verified. Try again."),
    "passkey-removed": N_("The security key or passkey has been removed."),
}


@router.get("/portal/callback")
def callback(
    request: Request,
    code: QueryText = None,
    state: QueryText = None,
    error: QueryText = None,
    iss: QueryText = None,
) -> Response:
    """Back from the provider: check state and issuer, exchange the code (in-process, with
    the PKCE verifier), check the id_token's nonce, open the portal session."""
    platform = get_platform(request)
    settings = platform.settings
    flow = portal.open_flow(platform.keyring, request.cookies.get(flow_cookie_name(settings)))
    if flow is None or not state or not hmac.compare_digest(state, flow.state):
        return error_page(request, "sign_in_expired", 400)
    if error or not code or (iss is not None and iss != settings.issuer):
        return error_page(request, "sign_in_failed", 400)
    tokens: dict[str, Any] | None = None
    with transaction(platform.sessions) as session:
        client = service.get_client(session, client_id=portal.PORTAL_CLIENT_ID)
        if client is not None and client.is_active:
            try:
                tokens = grant_authorization_code(
                    session,
                    platform,
                    client,
                    code=code,
                    redirect_uri=portal.portal_redirect_uri(settings),
                    code_verifier=flow.code_verifier,
                )
            except OAuthError:
                # Commit what the refusal recorded (a spent code, an audit row).
                tokens = None
    id_token = tokens.get("id_token") if tokens else None
    if not isinstance(id_token, str):
        return error_page(request, "sign_in_failed", 400)
    try:
        identity = portal.validate_id_token(
            platform.signing_keys, settings, id_token, nonce=flow.nonce
        )
    except portal.InvalidIdTokenError:
        return error_page(request, "sign_in_failed", 400)
    response = see_other(flow.return_to)
    set_private_cookie(
        response,
        settings,
        portal_cookie_name(settings),
        portal.seal_portal_session(platform.keyring, settings, identity),
    )
    drop_cookie(response, settings, flow_cookie_name(settings), path=FLOW_COOKIE_PATH)
    return response


@router.get("/")
def home(request: Request) -> Response:
    user = current_user(request)
    if user is None:
        return sign_in_redirect(request, "/")
    return render(
        request,
        "home.html",
        {"tiles": HOME_TILES.get(user.profile, ()), "profile_label": PROFILE_LABELS[user.profile]},
        user=user,
    )


@router.get("/account/security")
def account_security(request: Request, done: QueryText = None) -> Response:
    user = current_user(request)
    if user is None:
        return sign_in_redirect(request, "/account/security")
    platform = get_platform(request)
    with transaction(platform.read_sessions) as session:
        account = service.get_account_by_id(session, account_id=user.account_id)
        assert account is not None  # the portal session was just checked
        locale = request_locale(request)
        since = account.totp_confirmed_at
        context = {
            "has_totp": account.has_totp,
            "totp_since": format_date(since, format="long", locale=locale) if since else None,
            "notice": _SECURITY_NOTICES.get(done or ""),
            "form_token": user.csrf_token,
            "passkeys": [
                {
                    "id": key.id,
                    "name": key.name,
                    "added": format_date(key.created_at, format="long", locale=locale),
                    "last_used": format_date(key.last_used_at, format="long", locale=locale)
                    if key.last_used_at
                    else None,
                }
                for key in passkeys.credentials_of(session, account)
            ],
        }
    return render(request, "account_security.html", context, user=user)


@router.get("/account/security/totp")
def totp_enrol_form(request: Request) -> Response:
    user = current_user(request)
    if user is None:
        return sign_in_redirect(request, "/account/security/totp")
    platform = get_platform(request)
    with transaction(platform.sessions) as session:
        account = service.get_account_by_id(session, account_id=user.account_id)
        assert account is not None
        if account.has_totp:
            return see_other("/account/security")
        context = {
            "action": "/account/security/totp",
            "form_token": user.csrf_token,
            **enrolment_context(pending_totp(platform, account)),
        }
    return render(request, "enrol.html", context, user=user)


@router.post("/account/security/totp")
def totp_enrol_submit(request: Request, code: FormText = "", csrf_token: FormText = "") -> Response:
    user = current_user(request)
    if user is None:
        return sign_in_redirect(request, "/account/security")
    if not csrf.session_csrf_ok(request, user.csrf_token, csrf_token):
        return error_page(request, "csrf", 403)
    platform = get_platform(request)
    with transaction(platform.sessions) as session:
        account = service.get_account_by_id(session, account_id=user.account_id)
        assert account is not None
        if account.has_totp:
            return see_other("/account/security")
        confirmed = authn.confirm_totp_enrolment(session, platform, account=account, code=code)
        context: dict[str, Any] = {}
        if not confirmed:
            context = {
                "action": "/account/security/totp",
                "form_token": user.csrf_token,
                "message": MSG_BAD_CODE,
                **enrolment_context(pending_totp(platform, account)),
            }
    if confirmed:
        return see_other("/account/security?done=totp")
    return render(request, "enrol.html", context, user=user)
