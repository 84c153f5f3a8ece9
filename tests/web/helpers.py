"""Driving the portal through HTTP as a browser would: follow redirects, submit forms."""

from __future__ import annotations

import html
import re
import time

import httpx
import pyotp
from fastapi.testclient import TestClient

HTML = {"Accept": "text/html,application/xhtml+xml"}
GENERIC_FAILURE = "Identifiant ou mot de passe incorrect."
LOCKED = "Trop de tentatives. Réessayez dans 15 minutes ou contactez votre administrateur."
SIGNED_OUT = "Vous êtes déconnecté(e)."


def hidden(page: str, name: str) -> str:
    match = re.search(rf'<input type="hidden" name="{name}" value="([^"]*)"', page)
    assert match is not None, f"no hidden field {name}"
    return html.unescape(match.group(1))


def login_form(client: TestClient, path: str = "/") -> httpx.Response:
    """Open a portal page while signed out: the portal sends us to the provider's sign-in."""
    response = client.get(path, headers=HTML)
    assert response.status_code == 200
    assert response.url.path == "/login", response.url
    return response


def post_password(
    client: TestClient, page: httpx.Response, login: str, password: str
) -> httpx.Response:
    return client.post(
        "/login",
        data={
            "login": login,
            "password": password,
            "csrf_token": hidden(page.text, "csrf_token"),
            "next": hidden(page.text, "next"),
        },
        headers=HTML,
    )


def totp_code(secret: str, *, step_offset: int = 0) -> str:
    """A code for the current time step (or a neighbour: each step is accepted once)."""
    totp = pyotp.TOTP(secret)
    return totp.at(int(time.time()) + step_offset * totp.interval)


def post_code(client: TestClient, page: httpx.Response, code: str) -> httpx.Response:
    action = re.search(r'<form method="post" action="(/login/(?:mfa|enrol))"', page.text)
    assert action is not None, "no second-factor form"
    return client.post(
        action.group(1),
        data={
            "code": code,
            "csrf_token": hidden(page.text, "csrf_token"),
            "next": hidden(page.text, "next"),
        },
        headers=HTML,
    )


def sign_in(
    client: TestClient, login: str, password: str, secret: str | None, *, path: str = "/"
) -> httpx.Response:
    """The whole flow from a portal page back to it, signed in."""
    page = post_password(client, login_form(client, path), login, password)
    if page.url.path == "/login/mfa":
        assert secret is not None
        page = post_code(client, page, totp_code(secret))
    assert page.status_code == 200, page.text
    assert page.url.path == path, page.url
    return page


def csrf_of(page: str) -> str:
    """The signed-in session's token, as the layout gives it to htmx."""
    match = re.search(r'hx-headers=\'\{"X-CSRF-Token": "([^"]+)"\}\'', page)
    assert match is not None, "no CSRF token in the layout"
    return match.group(1)
