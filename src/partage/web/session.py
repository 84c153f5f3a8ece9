"""The portal session of a request: who is signed in, and sending them to sign in."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import RedirectResponse, Response

from partage.config import Settings
from partage.db import transaction
from partage.security import portal
from partage.security.authn import sso_cookie_name
from partage.security.models import Profile
from partage.security.principal import Principal
from partage.web.deps import get_platform
from partage.web.pages import (
    NO_STORE,
    drop_cookie,
    host_cookie_name,
    is_htmx,
    safe_next,
    set_private_cookie,
)

PORTAL_COOKIE = "partage_portal"
FLOW_COOKIE = "partage_portal_flow"
FLOW_COOKIE_PATH = "/portal"
ADMIN_PROFILES = frozenset({Profile.territory_admin, Profile.establishment_admin})


@dataclass(frozen=True)
class PortalUser:
    """The signed-in person, as the pages need them (copied out of the database session)."""

    account_id: uuid.UUID
    login: str
    display_name: str
    profile: Profile
    establishment_id: uuid.UUID | None
    establishment_name: str | None
    sid: str
    csrf_token: str
    is_demo: bool

    @property
    def principal(self) -> Principal:
        return Principal(
            kind="account",
            label=self.login,
            account_id=self.account_id,
            profile=self.profile,
            establishment_id=self.establishment_id,
            sid=self.sid,
        )

    @property
    def is_admin(self) -> bool:
        return self.profile in ADMIN_PROFILES

    @property
    def is_territory_admin(self) -> bool:
        return self.profile is Profile.territory_admin


def portal_cookie_name(settings: Settings) -> str:
    return host_cookie_name(settings, PORTAL_COOKIE)


def flow_cookie_name(settings: Settings) -> str:
    # Path=/portal rules out __Host-; __Secure- still insists on TLS.
    return f"__Secure-{FLOW_COOKIE}" if settings.behind_tls else FLOW_COOKIE


def current_user(request: Request) -> PortalUser | None:
    """The person behind the portal cookie, re-checked now; None to send them to sign in."""
    if hasattr(request.state, "portal_user"):
        cached: PortalUser | None = request.state.portal_user
        return cached
    platform = get_platform(request)
    identity = portal.open_portal_session(
        platform.keyring, request.cookies.get(portal_cookie_name(platform.settings))
    )
    user = None
    if identity is not None:
        with transaction(platform.sessions) as session:
            sso = portal.live_sso_session(session, platform.settings, identity)
            if sso is not None:
                account = sso.account
                user = PortalUser(
                    account_id=account.id,
                    login=account.login,
                    display_name=account.display_name,
                    profile=Profile(account.profile),
                    establishment_id=account.establishment_id,
                    establishment_name=account.establishment.name
                    if account.establishment
                    else None,
                    sid=sso.sid,
                    csrf_token=sso.csrf_token,
                    is_demo=account.is_demo,
                )
    request.state.portal_user = user
    return user


def authorize_url(settings: Settings, flow: portal.SignInFlow) -> str:
    query = urlencode(
        {
            "response_type": "code",
            "client_id": portal.PORTAL_CLIENT_ID,
            "redirect_uri": portal.portal_redirect_uri(settings),
            "scope": portal.PORTAL_REQUESTED_SCOPES,
            "state": flow.state,
            "nonce": flow.nonce,
            "code_challenge": flow.code_challenge,
            "code_challenge_method": "S256",
        }
    )
    return f"/oauth2/authorize?{query}"


def signed_in(request: Request, return_to: str) -> PortalUser | Response:
    """The signed-in person, or the redirection to signing in (back to `return_to`)."""
    user = current_user(request)
    if user is None:
        return sign_in_redirect(request, return_to)
    return user


def sign_in_redirect(request: Request, return_to: str = "/") -> Response:
    """Drop the portal session and go through the provider's sign-in, then back here."""
    platform = get_platform(request)
    settings = platform.settings
    return_to = safe_next(return_to)
    if is_htmx(request):
        # htmx would swap the sign-in page into a table cell: have it navigate instead.
        response: Response = Response(status_code=200, headers={"HX-Redirect": return_to})
    else:
        flow = portal.new_sign_in_flow(return_to)
        response = RedirectResponse(
            authorize_url(settings, flow), status_code=303, headers=NO_STORE
        )
        set_private_cookie(
            response,
            settings,
            flow_cookie_name(settings),
            portal.seal_flow(platform.keyring, flow),
            path=FLOW_COOKIE_PATH,
            max_age=portal.FLOW_TTL_SECONDS,
        )
    drop_cookie(response, settings, portal_cookie_name(settings))
    return response


def drop_all_sessions(response: Response, settings: Settings) -> None:
    drop_cookie(response, settings, portal_cookie_name(settings))
    drop_cookie(response, settings, sso_cookie_name(settings))
