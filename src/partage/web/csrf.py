"""Cross-site request forgery checks.

Signed-in forms carry the SSO session's own token (in a hidden field, or for htmx in the
`X-CSRF-Token` header set on <body>). The sign-in form has no session yet: it uses a double
submit — a random value in an HttpOnly, SameSite=Strict cookie and the same in the form.
"""

from __future__ import annotations

import hmac
import secrets

from fastapi import Request
from fastapi.responses import Response

from partage.config import Settings
from partage.web.pages import host_cookie_name, set_private_cookie

LOGIN_CSRF_COOKIE = "partage_login_csrf"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"


def _matches(expected: str | None, given: str | None) -> bool:
    if not expected or not given or len(given) > 200:
        return False
    return hmac.compare_digest(expected.encode(), given.encode())


def login_csrf_token(request: Request, settings: Settings) -> str:
    """The browser's double-submit value, kept if it has one (other tabs stay valid)."""
    existing = request.cookies.get(host_cookie_name(settings, LOGIN_CSRF_COOKIE))
    if existing and 20 <= len(existing) <= 100 and existing.isascii():
        return existing
    return secrets.token_urlsafe(32)


def set_login_csrf_cookie(response: Response, settings: Settings, token: str) -> None:
    set_private_cookie(
        response,
        settings,
        host_cookie_name(settings, LOGIN_CSRF_COOKIE),
        token,
        same_site="strict",
    )


def login_csrf_ok(request: Request, settings: Settings, submitted: str | None) -> bool:
    cookie = request.cookies.get(host_cookie_name(settings, LOGIN_CSRF_COOKIE))
    return _matches(cookie, submitted)


def session_csrf_ok(request: Request, expected: str, submitted: str | None) -> bool:
    """The form field, or the header htmx sends."""
    return _matches(expected, submitted) or _matches(expected, request.headers.get(CSRF_HEADER))
