"""People sign in through the provider: authorization code + PKCE with a real OAuth client."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from authlib.common.security import generate_token
from authlib.integrations.httpx_client import OAuth2Client
from joserfc import jwt
from joserfc.jwk import KeySet

from partage.db import transaction
from partage.directory.models import Practitioner
from partage.platform import Platform
from partage.security import actions, service
from partage.security.models import OAuthClient, Profile
from partage.security.principal import operator_principal
from tests.conftest import MadeAccount

pytestmark = pytest.mark.live

REDIRECT_URI = "http://127.0.0.1:9/callback"
APP_SCOPES = "openid profile offline_access user/*.rs"
MakeClient = Callable[..., tuple[OAuthClient, str | None]]
_CSRF = re.compile(r'name="csrf_token"\s+value="([^"]+)"')


def sign_in_through_browser_forms(
    browser: httpx.Client, authorize_url: str, person: MadeAccount
) -> str:
    """What a person's browser does: sign-in form, second factor, back to the application."""
    response = browser.get(authorize_url)
    assert response.status_code == 303 and response.headers["location"].startswith("/login?")
    login_page = browser.get(response.headers["location"])
    next_path = parse_qs(urlsplit(response.headers["location"]).query)["next"][0]
    form = {
        "login": person.login,
        "password": person.password,
        "next": next_path,
        "csrf_token": _CSRF.search(login_page.text).group(1),
    }  # type: ignore[union-attr]
    response = browser.post("/login", data=form)
    assert response.status_code == 303, response.text
    mfa_page = browser.get(response.headers["location"])
    response = browser.post(
        response.headers["location"].split("?")[0],
        data={
            "code": person.totp_now(),
            "next": next_path,
            "csrf_token": _CSRF.search(mfa_page.text).group(1),
        },
    )  # type: ignore[union-attr]
    assert response.status_code == 303, response.text
    response = browser.get(response.headers["location"])
    assert response.status_code == 302, response.text
    location = response.headers["location"]
    assert location.startswith(REDIRECT_URI)
    return location


@pytest.fixture
def application(make_client: MakeClient) -> tuple[OAuthClient, str]:
    registered, secret = make_client(APP_SCOPES, redirect_uris=[REDIRECT_URI])
    assert secret is not None
    return registered, secret


def run_code_flow(
    live_server: str,
    app: tuple[OAuthClient, str],
    person: MadeAccount,
    scope: str = APP_SCOPES,
) -> tuple[OAuth2Client, dict[str, object]]:
    registered, secret = app
    oauth = OAuth2Client(
        registered.client_id,
        secret,
        scope=scope,
        redirect_uri=REDIRECT_URI,
        code_challenge_method="S256",
    )
    verifier = generate_token(64)
    nonce = generate_token(20)
    url, state = oauth.create_authorization_url(
        f"{live_server}/oauth2/authorize", code_verifier=verifier, nonce=nonce
    )
    with httpx.Client(base_url=live_server) as browser:
        redirect = sign_in_through_browser_forms(browser, url, person)
    query = parse_qs(urlsplit(redirect).query)
    assert query["state"] == [state]
    assert query["iss"] == [live_server]
    token = oauth.fetch_token(
        f"{live_server}/oauth2/token", authorization_response=redirect, code_verifier=verifier
    )
    claims = jwt.decode(
        token["id_token"], KeySet.import_key_set(httpx.get(f"{live_server}/oauth2/jwks").json())
    ).claims
    assert claims["nonce"] == nonce
    assert claims["aud"] == registered.client_id
    assert "mfa" in claims["amr"]
    token["claims"] = dict(claims)
    return oauth, dict(token)


def test_code_flow_with_pkce_then_userinfo_and_refresh(
    live_server: str,
    application: tuple[OAuthClient, str],
    make_account: Callable[..., MadeAccount],
) -> None:
    person = make_account(Profile.city_physician)
    oauth, token = run_code_flow(live_server, application, person)
    info = oauth.get(f"{live_server}/oauth2/userinfo").json()
    assert info["preferred_username"] == person.login
    assert info["profile_code"] == "city_physician"

    refreshed = oauth.refresh_token(f"{live_server}/oauth2/token")
    assert refreshed["refresh_token"] != token["refresh_token"]
    # The spent refresh token is refused, and its reuse revokes the whole family.
    reuse = httpx.post(
        f"{live_server}/oauth2/token",
        auth=(application[0].client_id, application[1]),
        data={"grant_type": "refresh_token", "refresh_token": token["refresh_token"]},
    )
    assert reuse.status_code == 400 and reuse.json()["error"] == "invalid_grant"
    after_reuse = httpx.post(
        f"{live_server}/oauth2/token",
        auth=(application[0].client_id, application[1]),
        data={"grant_type": "refresh_token", "refresh_token": refreshed["refresh_token"]},
    )
    assert after_reuse.status_code == 400


def test_a_professional_signs_in_as_their_practitioner(
    live_server: str,
    platform: Platform,
    make_client: MakeClient,
    make_account: Callable[..., MadeAccount],
) -> None:
    """SMART's fhirUser: the account's national id names its practitioner in the directory."""
    scopes = "openid fhirUser user/Practitioner.rs"
    registered, secret = make_client(scopes, redirect_uris=[REDIRECT_URI])
    person = make_account(Profile.city_physician)
    national_id = "8" + str(uuid.uuid4().int)[:11]
    with transaction(platform.sessions) as session:
        practitioner = Practitioner(
            national_id=national_id,
            id_type="8",
            local_id=national_id[1:],
            family_name="LEFÈVRE",
            given_name="Marie",
            family_name_folded="LEFEVRE",
            given_name_folded="MARIE",
            content_hash="-",
        )
        session.add(practitioner)
        account = service.get_account(session, login=person.login)
        assert account is not None
        account.national_id = national_id
        session.flush()
        practitioner_url = f"{live_server}/fhir/Practitioner/{practitioner.id}"
    oauth, token = run_code_flow(live_server, (registered, secret or ""), person, scopes)
    assert token["claims"]["fhirUser"] == practitioner_url  # type: ignore[index]
    info = oauth.get(f"{live_server}/oauth2/userinfo").json()
    assert info["fhirUser"] == practitioner_url
    me = oauth.get(practitioner_url)
    assert me.status_code == 200 and me.json()["name"][0]["family"] == "LEFÈVRE"


def test_disabling_the_account_stops_its_tokens_at_once(
    live_server: str,
    application: tuple[OAuthClient, str],
    make_account: Callable[..., MadeAccount],
    platform: Platform,
) -> None:
    person = make_account(Profile.hospital_physician)
    oauth, token = run_code_flow(live_server, application, person)
    assert oauth.get(f"{live_server}/api/v1/whoami").status_code == 200
    with transaction(platform.sessions) as session:
        account = service.get_account(session, login=person.login)
        assert account is not None
        actions.set_account_status(
            session,
            actor=operator_principal(),
            account=account,
            active=False,
            reason="left the hospital",
        )
    assert oauth.get(f"{live_server}/api/v1/whoami").status_code == 401
    assert oauth.get(f"{live_server}/oauth2/userinfo").status_code == 401
    refresh = httpx.post(
        f"{live_server}/oauth2/token",
        auth=(application[0].client_id, application[1]),
        data={"grant_type": "refresh_token", "refresh_token": token["refresh_token"]},
    )
    assert refresh.status_code == 400


def test_a_code_is_single_use_and_bound_to_its_verifier(
    live_server: str,
    application: tuple[OAuthClient, str],
    make_account: Callable[..., MadeAccount],
) -> None:
    registered, secret = application
    person = make_account(Profile.pharmacist)
    oauth = OAuth2Client(
        registered.client_id,
        secret,
        scope=APP_SCOPES,
        redirect_uri=REDIRECT_URI,
        code_challenge_method="S256",
    )
    verifier = generate_token(64)
    url, _ = oauth.create_authorization_url(
        f"{live_server}/oauth2/authorize", code_verifier=verifier
    )
    with httpx.Client(base_url=live_server) as browser:
        redirect = sign_in_through_browser_forms(browser, url, person)
    code = parse_qs(urlsplit(redirect).query)["code"][0]
    exchange = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI}
    wrong = httpx.post(
        f"{live_server}/oauth2/token",
        auth=(registered.client_id, secret),
        data={**exchange, "code_verifier": generate_token(64)},
    )
    assert wrong.status_code == 400
    # The failed attempt spent the code: the right verifier is now too late.
    late = httpx.post(
        f"{live_server}/oauth2/token",
        auth=(registered.client_id, secret),
        data={**exchange, "code_verifier": verifier},
    )
    assert late.status_code == 400


def test_authorize_refuses_what_it_cannot_trust(
    live_server: str, application: tuple[OAuthClient, str]
) -> None:
    registered, _ = application
    base = {
        "response_type": "code",
        "client_id": registered.client_id,
        "redirect_uri": REDIRECT_URI,
        "scope": "openid",
        "state": "s1",
        "code_challenge": "x" * 43,
        "code_challenge_method": "S256",
    }
    # An unregistered redirect URI is never redirected to.
    page = httpx.get(
        f"{live_server}/oauth2/authorize",
        params={**base, "redirect_uri": "https://evil.example/cb"},
    )
    assert page.status_code == 400
    assert "evil.example" not in page.headers.get("location", "")
    # Without PKCE, the error goes back to the application.
    no_pkce = httpx.get(
        f"{live_server}/oauth2/authorize", params={**base, "code_challenge_method": "plain"}
    )
    assert no_pkce.status_code == 302
    assert parse_qs(urlsplit(no_pkce.headers["location"]).query)["error"] == ["invalid_request"]
    too_much = httpx.get(
        f"{live_server}/oauth2/authorize", params={**base, "scope": "openid system/*.cruds"}
    )
    assert parse_qs(urlsplit(too_much.headers["location"]).query)["error"] == ["invalid_scope"]
    silent = httpx.get(f"{live_server}/oauth2/authorize", params={**base, "prompt": "none"})
    assert parse_qs(urlsplit(silent.headers["location"]).query)["error"] == ["login_required"]


def test_rp_initiated_logout_ends_the_session_and_its_tokens(
    live_server: str,
    application: tuple[OAuthClient, str],
    make_account: Callable[..., MadeAccount],
) -> None:
    registered, secret = application
    person = make_account(Profile.nurse)
    oauth = OAuth2Client(
        registered.client_id,
        secret,
        scope=APP_SCOPES,
        redirect_uri=REDIRECT_URI,
        code_challenge_method="S256",
    )
    verifier = generate_token(64)
    url, _ = oauth.create_authorization_url(
        f"{live_server}/oauth2/authorize", code_verifier=verifier
    )
    with httpx.Client(base_url=live_server) as browser:
        redirect = sign_in_through_browser_forms(browser, url, person)
        token = oauth.fetch_token(
            f"{live_server}/oauth2/token", authorization_response=redirect, code_verifier=verifier
        )
        assert oauth.get(f"{live_server}/api/v1/whoami").status_code == 200

        refused = browser.get(
            "/oauth2/logout",
            params={
                "id_token_hint": token["id_token"],
                "post_logout_redirect_uri": "https://evil.example/",
            },
        )
        assert refused.status_code == 400

        confirm = browser.get(
            "/oauth2/logout",
            params={
                "id_token_hint": token["id_token"],
                "post_logout_redirect_uri": REDIRECT_URI,
                "state": "bye",
            },
        )
        assert confirm.status_code == 200
        # A link alone signs nobody out: the person confirms with the session's form.
        assert oauth.get(f"{live_server}/api/v1/whoami").status_code == 200
        form = dict(re.findall(r'name="([a-z_]+)" value="([^"]*)"', confirm.text))
        done = browser.post("/oauth2/logout", data=form)
        assert done.status_code == 303
        assert done.headers["location"] == f"{REDIRECT_URI}?state=bye"
    assert oauth.get(f"{live_server}/api/v1/whoami").status_code == 401
