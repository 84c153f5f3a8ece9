"""Passkeys on the portal: adding and removing them, and signing in with one.

The ceremony runs in the browser (static/passkeys.js): it asks for options (JSON), lets the
authenticator answer, then posts the answer in an ordinary form, so every outcome is a page.
"""

from __future__ import annotations

import uuid
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request
from fastapi.responses import JSONResponse, Response

from partage.db import transaction
from partage.security import passkeys, portal, service
from partage.security.authn import PasswordOutcome
from partage.web import csrf
from partage.web.auth_pages import (
    locked_out_page,
    pending_sso,
    second_factor_step,
)
from partage.web.deps import get_platform
from partage.web.pages import error_page, safe_next, see_other
from partage.web.session import current_user, sign_in_redirect

router = APIRouter(tags=["portal"])

CredentialText = Annotated[str, Form(max_length=passkeys.MAX_CREDENTIAL_JSON)]
FormText = Annotated[str, Form(max_length=4096)]
_NO_STORE = {"Cache-Control": "no-store"}


@router.post("/account/security/passkeys/options")
def registration_options(request: Request, csrf_token: FormText = "") -> Response:
    user = current_user(request)
    if user is None or not csrf.session_csrf_ok(request, user.csrf_token, csrf_token):
        return JSONResponse({"error": "forbidden"}, status_code=403)
    platform = get_platform(request)
    with transaction(platform.sessions) as session:
        sso = portal.get_sso_session(session, sid=user.sid)
        if sso is None:
            return JSONResponse({"error": "forbidden"}, status_code=403)
        options = passkeys.registration_options(session, platform, sso=sso)
    return Response(options, media_type="application/json", headers=_NO_STORE)


@router.post("/account/security/passkeys")
def register_passkey(
    request: Request,
    credential: CredentialText = "",
    name: FormText = "",
    csrf_token: FormText = "",
) -> Response:
    user = current_user(request)
    if user is None:
        return sign_in_redirect(request, "/account/security")
    if not csrf.session_csrf_ok(request, user.csrf_token, csrf_token):
        return error_page(request, "csrf", 403)
    platform = get_platform(request)
    with transaction(platform.sessions) as session:
        sso = portal.get_sso_session(session, sid=user.sid)
        created = sso is not None and passkeys.finish_registration(
            session, platform, sso=sso, credential_json=credential, name=name[:100]
        )
    return see_other("/account/security?done=" + ("passkey" if created else "passkey-failed"))


@router.post("/account/security/passkeys/{credential_id}/delete")
def remove_passkey(
    request: Request, credential_id: uuid.UUID, csrf_token: FormText = ""
) -> Response:
    user = current_user(request)
    if user is None:
        return sign_in_redirect(request, "/account/security")
    if not csrf.session_csrf_ok(request, user.csrf_token, csrf_token):
        return error_page(request, "csrf", 403)
    platform = get_platform(request)
    with transaction(platform.sessions) as session:
        account = service.get_account_by_id(session, account_id=user.account_id)
        assert account is not None
        removed = passkeys.remove_passkey(session, account=account, credential_id=credential_id)
    if not removed:
        return error_page(request, "not_found", 404)
    return see_other("/account/security?done=passkey-removed")


@router.post("/login/mfa/passkey/options")
def authentication_options(request: Request, csrf_token: FormText = "") -> Response:
    platform = get_platform(request)
    with transaction(platform.sessions) as session:
        sso = pending_sso(request, platform, session)
        if sso is None or not csrf.session_csrf_ok(request, sso.csrf_token, csrf_token):
            return JSONResponse({"error": "forbidden"}, status_code=403)
        options = passkeys.authentication_options(session, platform, sso=sso)
    return Response(options, media_type="application/json", headers=_NO_STORE)


@router.post("/login/mfa/passkey")
def sign_in_with_passkey(
    request: Request,
    credential: CredentialText = "",
    csrf_token: FormText = "",
    next: FormText = "/",
) -> Response:
    platform = get_platform(request)
    next_path = safe_next(next)
    with transaction(platform.sessions) as session:
        sso = second_factor_step(request, platform, session, csrf_token, next_path)
        if isinstance(sso, Response):
            return sso
        outcome = passkeys.finish_authentication(
            session, platform, sso=sso, credential_json=credential
        )
    if outcome is PasswordOutcome.signed_in:
        return see_other(next_path)
    if outcome is PasswordOutcome.locked:
        return locked_out_page(request, next_path)
    return see_other("/login/mfa?" + urlencode({"next": next_path, "problem": "passkey"}))
