"""Signing in at the provider: password, second factor, first enrolment; signing out.

Every POST runs in one transaction and calls `authn`, which writes the audit rows. A refused
attempt returns a page rather than raising, so its failure count and audit row commit.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

import pyotp
import segno
from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import Response
from markupsafe import Markup

from partage.db import transaction
from partage.platform import Platform
from partage.security import authn, portal
from partage.security.authn import PasswordOutcome, Stage
from partage.security.models import Account, SsoSession
from partage.web import csrf
from partage.web.deps import get_platform
from partage.web.i18n import LANG_COOKIE, LOCALES, N_
from partage.web.pages import error_page, render, safe_next, see_other, set_private_cookie
from partage.web.session import current_user, drop_all_sessions

router = APIRouter(tags=["portal"])

FormText = Annotated[str, Form(max_length=4096)]
NextQuery = Annotated[str | None, Query(max_length=4096)]

MSG_BAD_CREDENTIALS = N_("Incorrect login or password.")
MSG_LOCKED = N_("Too many attempts. Try again in 15 minutes or contact your administrator.")
MSG_BAD_CODE = N_("Incorrect code. Check the time on your phone and try again.")
MSG_SIGNED_OUT = N_("You are signed out.")
MSG_PASSKEY_FAILED = N_("The security key or passkey could not be verified. Try again.")
LANG_COOKIE_MAX_AGE = 365 * 24 * 3600


def with_next(path: str, next_path: str) -> str:
    return path if next_path == "/" else f"{path}?{urlencode({'next': next_path})}"


def login_page(
    request: Request,
    *,
    next_path: str = "/",
    message: str | None = None,
    notice: str | None = None,
    login: str = "",
) -> Response:
    """The sign-in form, with a fresh double-submit CSRF cookie."""
    settings = get_platform(request).settings
    token = csrf.login_csrf_token(request, settings)
    response = render(
        request,
        "login.html",
        {
            "next": next_path,
            "message": message,
            "notice": notice,
            "login": login,
            "form_token": token,
        },
    )
    csrf.set_login_csrf_cookie(response, settings, token)
    return response


@router.get("/login")
def login_form(request: Request, next: NextQuery = None) -> Response:
    return login_page(request, next_path=safe_next(next))


@router.post("/login")
def login_submit(
    request: Request,
    login: FormText = "",
    password: FormText = "",
    csrf_token: FormText = "",
    next: FormText = "/",
) -> Response:
    platform = get_platform(request)
    next_path = safe_next(next)
    if not csrf.login_csrf_ok(request, platform.settings, csrf_token):
        return error_page(request, "csrf", 403)
    cookie_name = authn.sso_cookie_name(platform.settings)
    with transaction(platform.sessions) as session:
        previous = authn.load_sso_session(session, platform, request.cookies.get(cookie_name))
        result = authn.sign_in_with_password(
            session, platform, login=login[:200], password=password
        )
        if result.cookie_secret is not None and previous is not None:
            # One browser, one session: a new sign-in ends the one it replaces.
            authn.end_sso_session(session, previous, reason="replaced")
    if result.outcome is PasswordOutcome.locked:
        return login_page(request, next_path=next_path, message=MSG_LOCKED, login=login[:200])
    if result.outcome is PasswordOutcome.failed or result.cookie_secret is None:
        return login_page(
            request, next_path=next_path, message=MSG_BAD_CREDENTIALS, login=login[:200]
        )
    if result.outcome is PasswordOutcome.second_factor:
        response = see_other(with_next("/login/mfa", next_path))
    elif result.outcome is PasswordOutcome.enrol_second_factor:
        response = see_other(with_next("/login/enrol", next_path))
    else:
        response = see_other(next_path)
    set_private_cookie(response, platform.settings, cookie_name, result.cookie_secret)
    return response


def locked_out_page(request: Request, next_path: str) -> Response:
    """Back to the sign-in page with the lock-out message, every session cookie dropped."""
    response = login_page(request, next_path=next_path, message=MSG_LOCKED)
    drop_all_sessions(response, get_platform(request).settings)
    return response


def pending_sso(request: Request, platform: Platform, session: Any) -> SsoSession | None:
    secret = request.cookies.get(authn.sso_cookie_name(platform.settings))
    return authn.load_sso_session(session, platform, secret)


def second_factor_step(
    request: Request, platform: Platform, session: Any, csrf_token: str, next_path: str
) -> SsoSession | Response:
    """The session waiting for its second factor, or the page to send the browser to
    instead (signed out: sign in; bad CSRF: refused; already complete: onwards)."""
    sso = pending_sso(request, platform, session)
    if sso is None:
        return see_other(with_next("/login", next_path))
    if not csrf.session_csrf_ok(request, sso.csrf_token, csrf_token):
        return error_page(request, "csrf", 403)
    if sso.stage == Stage.complete.value:
        return see_other(next_path)
    return sso


def _demo_code(platform: Platform, account: Account) -> str | None:
    """Demo territories only: the current code of a demo account, so a visitor can sign in
    without an authenticator app. Never for a real account, never outside demo mode."""
    if not (platform.settings.demo and account.is_demo):
        return None
    totp = authn.totp_for(platform, account)
    return totp.now() if totp is not None else None


@router.get("/login/mfa")
def mfa_form(
    request: Request,
    next: NextQuery = None,
    problem: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    platform = get_platform(request)
    next_path = safe_next(next)
    with transaction(platform.sessions) as session:
        sso = pending_sso(request, platform, session)
        if sso is None:
            return see_other(with_next("/login", next_path))
        if sso.stage == Stage.complete.value:
            return see_other(next_path)
        has_passkeys = authn.has_passkeys(session, sso.account)
        if not sso.account.has_totp and not has_passkeys:
            return see_other(with_next("/login/enrol", next_path))
        context = {
            "next": next_path,
            "form_token": sso.csrf_token,
            "demo_code": _demo_code(platform, sso.account),
            "has_totp": sso.account.has_totp,
            "has_passkeys": has_passkeys,
            "message": MSG_PASSKEY_FAILED if problem == "passkey" else None,
        }
    return render(request, "mfa.html", context)


@router.post("/login/mfa")
def mfa_submit(
    request: Request,
    code: FormText = "",
    csrf_token: FormText = "",
    next: FormText = "/",
) -> Response:
    platform = get_platform(request)
    next_path = safe_next(next)
    with transaction(platform.sessions) as session:
        sso = second_factor_step(request, platform, session, csrf_token, next_path)
        if isinstance(sso, Response):
            return sso
        outcome = authn.verify_second_factor_totp(session, platform, sso=sso, code=code[:20])
        context = {
            "next": next_path,
            "form_token": sso.csrf_token,
            "demo_code": _demo_code(platform, sso.account),
            "has_totp": sso.account.has_totp,
            "has_passkeys": authn.has_passkeys(session, sso.account),
            "message": MSG_BAD_CODE,
        }
    if outcome is PasswordOutcome.signed_in:
        return see_other(next_path)
    if outcome is PasswordOutcome.locked:
        return locked_out_page(request, next_path)
    return render(request, "mfa.html", context)


def _grouped(secret: str) -> str:
    return " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))


def enrolment_context(totp: pyotp.TOTP) -> dict[str, Any]:
    """The QR code (inline SVG, no style attribute) and the secret for manual entry."""
    uri = totp.provisioning_uri()
    qr = segno.make(uri, error="m")
    # A viewBox (omitsize) lets the stylesheet size it; the text key below is what a screen
    # reader offers, so the picture itself is hidden from assistive technology.
    svg = qr.svg_inline(scale=1, border=4, dark="#000", light="#fff", omitsize=True)
    svg = svg.replace("<svg ", '<svg aria-hidden="true" focusable="false" ', 1)
    return {"qr_svg": Markup(svg), "secret": _grouped(totp.secret)}  # noqa: S704 - segno output


def pending_totp(platform: Platform, account: Account) -> pyotp.TOTP:
    """The enrolment under way (a reload must not change the secret already scanned)."""
    totp = authn.totp_for(platform, account)
    return totp if totp is not None else authn.start_totp_enrolment(platform, account)


@router.get("/login/enrol")
def enrol_form(request: Request, next: NextQuery = None) -> Response:
    platform = get_platform(request)
    next_path = safe_next(next)
    with transaction(platform.sessions) as session:
        sso = pending_sso(request, platform, session)
        if sso is None:
            return see_other(with_next("/login", next_path))
        if sso.stage == Stage.complete.value:
            return see_other(next_path)
        if sso.account.has_totp:
            return see_other(with_next("/login/mfa", next_path))
        context = {
            "next": next_path,
            "form_token": sso.csrf_token,
            "action": "/login/enrol",
            **enrolment_context(pending_totp(platform, sso.account)),
        }
    return render(request, "enrol.html", context)


@router.post("/login/enrol")
def enrol_submit(
    request: Request,
    code: FormText = "",
    csrf_token: FormText = "",
    next: FormText = "/",
) -> Response:
    platform = get_platform(request)
    next_path = safe_next(next)
    with transaction(platform.sessions) as session:
        sso = second_factor_step(request, platform, session, csrf_token, next_path)
        if isinstance(sso, Response):
            return sso
        confirmed = authn.confirm_totp_enrolment(
            session, platform, account=sso.account, code=code[:20], sso=sso
        )
        context: dict[str, Any] = {}
        if not confirmed and not sso.account.has_totp:
            context = {
                "next": next_path,
                "form_token": sso.csrf_token,
                "action": "/login/enrol",
                "message": MSG_BAD_CODE,
                **enrolment_context(pending_totp(platform, sso.account)),
            }
    if confirmed:
        return see_other(next_path)
    if not context:
        return see_other(with_next("/login/mfa", next_path))
    return render(request, "enrol.html", context)


@router.post("/logout")
def logout(request: Request, csrf_token: FormText = "") -> Response:
    platform = get_platform(request)
    user = current_user(request)
    if user is not None and not csrf.session_csrf_ok(request, user.csrf_token, csrf_token):
        return error_page(request, "csrf", 403)
    with transaction(platform.sessions) as session:
        if user is not None:
            ended = portal.get_sso_session(session, sid=user.sid)
            if ended is not None:
                authn.end_sso_session(session, ended)
        cookie_session = pending_sso(request, platform, session)
        if cookie_session is not None:
            authn.end_sso_session(session, cookie_session)
    response = login_page(request, notice=MSG_SIGNED_OUT)
    drop_all_sessions(response, platform.settings)
    return response


@router.get("/lang")
def switch_language(
    request: Request,
    to: Annotated[str, Query(max_length=8)] = "",
    next: NextQuery = None,
) -> Response:
    response = see_other(safe_next(next))
    if to in LOCALES:
        set_private_cookie(
            response,
            get_platform(request).settings,
            LANG_COOKIE,
            to,
            max_age=LANG_COOKIE_MAX_AGE,
        )
    return response
