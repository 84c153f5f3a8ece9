"""Rendering pages: the language of the request, the layout's context, error pages, cookies."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from partage.access.decision import NotFound
from partage.config import Settings
from partage.web.deps import get_platform
from partage.web.i18n import LANG_COOKIE, LANGUAGE_NAMES, LOCALES, N_, choose_locale, environment

if TYPE_CHECKING:
    from partage.web.session import PortalUser

# Pages carry personal data or single-use form tokens: never cached, never stored.
NO_STORE = {"Cache-Control": "no-store"}
MAX_NEXT_LENGTH = 4096

# message_code -> (title, explanation), msgids in English.
ERROR_MESSAGES: dict[str, tuple[str, str]] = {
    "unknown_client": (
        N_("Unknown application"),
        N_(
            "The application that sent you here is not registered with Partage, or it has "
            "been revoked. Contact its publisher or your administrator."
        ),
    ),
    "bad_redirect_uri": (
        N_("Invalid return address"),
        N_(
            "The application that sent you here gave a return address it is not allowed to "
            "use. For your safety, the sign-in stops here."
        ),
    ),
    "not_found": (
        N_("Page not found"),
        N_("This page does not exist, or you do not have access to it."),
    ),
    "invalid_request": (
        N_("Invalid request"),
        N_("The request is incomplete or malformed. Go back and check what you entered."),
    ),
    "csrf": (
        N_("Form expired"),
        N_("This form has expired or did not come from Partage. Reload the page and try again."),
    ),
    "sign_in_expired": (
        N_("Sign-in expired"),
        N_(
            "The sign-in took too long or was started in another tab. Start again from the "
            "home page."
        ),
    ),
    "sign_in_failed": (
        N_("Sign-in failed"),
        N_("The sign-in could not be completed. Start again from the home page."),
    ),
    "method_not_allowed": (
        N_("Action not allowed"),
        N_("This address does not accept this kind of request."),
    ),
    "error": (
        N_("Something went wrong"),
        N_("The request could not be completed. Try again in a moment."),
    ),
}


def request_locale(request: Request) -> str:
    cached = getattr(request.state, "locale", None)
    if isinstance(cached, str):
        return cached
    locale = choose_locale(request.cookies.get(LANG_COOKIE), request.headers.get("accept-language"))
    request.state.locale = locale
    return locale


def is_local_path(target: str | None) -> bool:
    """A path on this site: `/…` but not `//host` nor `/\\host` (browsers read `\\` as `/`)."""
    if not target or len(target) > MAX_NEXT_LENGTH:
        return False
    if not target.startswith("/") or target.startswith("//"):
        return False
    return "\\" not in target and not any(ord(ch) < 32 or ord(ch) == 127 for ch in target)


def safe_next(target: str | None, default: str = "/") -> str:
    return target if target is not None and is_local_path(target) else default


def row_id(value: str) -> uuid.UUID:
    """The id in a page's path; a malformed one answers as an unknown row does."""
    try:
        return uuid.UUID(value)
    except ValueError:
        raise NotFound() from None


def current_path(request: Request) -> str:
    query = request.url.query
    return request.url.path + (f"?{query}" if query else "")


def wants_html(request: Request) -> bool:
    """Pages for people's browsers; JSON for the APIs and anything that does not ask for HTML."""
    path = request.url.path
    if path.startswith(("/oauth2/", "/.well-known/", "/fhir", "/api", "/dicomweb")):
        return False
    return "text/html" in request.headers.get("accept", "")


def render(
    request: Request,
    template: str,
    context: dict[str, Any] | None = None,
    *,
    status_code: int = 200,
    user: PortalUser | None = None,
) -> HTMLResponse:
    locale = request_locale(request)
    settings = get_platform(request).settings
    here = current_path(request) if request.method == "GET" else "/"
    values: dict[str, Any] = {
        "user": user,
        "csrf_token": user.csrf_token if user is not None else None,
        "territory_name": settings.territory_name,
        "language_links": [
            {
                "code": code,
                "name": LANGUAGE_NAMES[code],
                "href": "/lang?" + urlencode({"to": code, "next": here}),
                "current": code == locale,
            }
            for code in LOCALES
        ],
        "path": request.url.path,
    }
    values.update(context or {})
    body = environment(locale).get_template(template).render(values)
    return HTMLResponse(body, status_code=status_code, headers=NO_STORE)


def render_fragment(
    request: Request, template: str, context: dict[str, Any], *, status_code: int = 200
) -> HTMLResponse:
    """A piece of a page for htmx to swap in."""
    body = environment(request_locale(request)).get_template(template).render(context)
    return HTMLResponse(body, status_code=status_code, headers=NO_STORE)


def error_page(request: Request, message_code: str, status_code: int = 400) -> HTMLResponse:
    """A readable page in the person's language. Touches no database: callers may hold a
    transaction open."""
    title, explanation = ERROR_MESSAGES.get(message_code, ERROR_MESSAGES["error"])
    return render(
        request,
        "error.html",
        {"title": title, "explanation": explanation, "status_code": status_code},
        status_code=status_code,
    )


def see_other(target: str) -> RedirectResponse:
    return RedirectResponse(target, status_code=303, headers=NO_STORE)


def is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


# --- cookies ---------------------------------------------------------------------------


def host_cookie_name(settings: Settings, name: str) -> str:
    # __Host- pins a cookie to our origin, Secure and Path=/ (possible only under TLS).
    return f"__Host-{name}" if settings.behind_tls else name


def set_private_cookie(
    response: Response,
    settings: Settings,
    name: str,
    value: str,
    *,
    same_site: str = "lax",
    path: str = "/",
    max_age: int | None = None,
) -> None:
    """An HttpOnly cookie, Secure under TLS; without max_age it ends with the browser."""
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=path,
        secure=settings.behind_tls,
        httponly=True,
        samesite=same_site,  # type: ignore[arg-type]
    )


def drop_cookie(response: Response, settings: Settings, name: str, *, path: str = "/") -> None:
    response.delete_cookie(
        name, path=path, secure=settings.behind_tls, httponly=True, samesite="lax"
    )
