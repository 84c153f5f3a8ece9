"""OpenID Connect RP-initiated logout (`end_session_endpoint`).

An application sends the person here to sign out. The person confirms (a form with the
session's CSRF token: a link alone must not sign anyone out); the SSO session ends; the
browser goes back to the application only to a redirect URI registered for it.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import RedirectResponse, Response

from partage.db import transaction
from partage.platform import Platform
from partage.security import authn, service
from partage.security.oauth import decode_id_token_audience
from partage.web import csrf
from partage.web.auth_pages import MSG_SIGNED_OUT, login_page, pending_sso
from partage.web.deps import get_platform
from partage.web.pages import error_page, render
from partage.web.session import drop_all_sessions

router = APIRouter(tags=["oidc"])

QueryText = Annotated[str | None, Query(max_length=4096)]
FormText = Annotated[str, Form(max_length=4096)]


def _return_address(
    platform: Platform, client_id: str | None, redirect_uri: str | None
) -> tuple[str | None, str | None]:
    """(client name, redirect URI) when the URI is registered for that client; else Nones."""
    if not client_id:
        return None, None
    with transaction(platform.read_sessions) as session:
        client = service.get_client(session, client_id=client_id)
        if client is None or not client.is_active:
            return None, None
        if redirect_uri and redirect_uri in client.redirect_uris:
            return client.name, redirect_uri
        return client.name, None


@router.get("/oauth2/logout")
def end_session_form(
    request: Request,
    client_id: QueryText = None,
    id_token_hint: QueryText = None,
    post_logout_redirect_uri: QueryText = None,
    state: Annotated[str | None, Query(max_length=512)] = None,
) -> Response:
    platform = get_platform(request)
    client_id = client_id or (decode_id_token_audience(platform, id_token_hint or "") or None)
    client_name, redirect_uri = _return_address(platform, client_id, post_logout_redirect_uri)
    if post_logout_redirect_uri and redirect_uri is None:
        return error_page(request, "bad_redirect_uri", 400)
    with transaction(platform.sessions) as session:
        sso = pending_sso(request, platform, session)
        token = sso.csrf_token if sso is not None else None
    if token is None:
        # Nobody is signed in here: nothing to end.
        if redirect_uri:
            return _back(redirect_uri, state)
        return login_page(request, notice=MSG_SIGNED_OUT)
    return render(
        request,
        "end_session.html",
        {
            "form_token": token,
            "client_id": client_id,
            "client_name": client_name,
            "redirect_uri": redirect_uri,
            "state": state,
        },
    )


@router.post("/oauth2/logout")
def end_session(
    request: Request,
    csrf_token: FormText = "",
    client_id: FormText = "",
    post_logout_redirect_uri: FormText = "",
    state: FormText = "",
) -> Response:
    platform = get_platform(request)
    _, redirect_uri = _return_address(platform, client_id, post_logout_redirect_uri)
    with transaction(platform.sessions) as session:
        sso = pending_sso(request, platform, session)
        if sso is not None:
            if not csrf.session_csrf_ok(request, sso.csrf_token, csrf_token):
                return error_page(request, "csrf", 403)
            authn.end_sso_session(session, sso, reason="logout")
    response: Response
    if redirect_uri:
        response = _back(redirect_uri, state or None)
    else:
        response = login_page(request, notice=MSG_SIGNED_OUT)
    drop_all_sessions(response, platform.settings)
    return response


def _back(redirect_uri: str, state: str | None) -> RedirectResponse:
    separator = "&" if "?" in redirect_uri else "?"
    query = urlencode({"state": state}) if state else ""
    target = f"{redirect_uri}{separator}{query}" if query else redirect_uri
    return RedirectResponse(target, status_code=303)
