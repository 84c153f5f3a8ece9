"""Signing in to the portal through HTTP: password, second factor, lock-out, sign-out."""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

from fastapi.testclient import TestClient
from sqlalchemy import update

from partage.db import transaction
from partage.platform import Platform
from partage.security import actions, service
from partage.security.models import Account, Profile
from partage.security.principal import operator_principal
from tests.conftest import MadeAccount, unique
from tests.web.helpers import (
    GENERIC_FAILURE,
    HTML,
    LOCKED,
    SIGNED_OUT,
    csrf_of,
    hidden,
    login_form,
    post_code,
    post_password,
    sign_in,
    totp_code,
)

MakeAccount = Callable[..., MadeAccount]


def test_password_and_totp_lead_to_the_home_page(
    client: TestClient, make_account: MakeAccount
) -> None:
    made = make_account(Profile.hospital_physician)
    page = login_form(client)
    assert '<html lang="fr">' in page.text
    next_path = hidden(page.text, "next")
    assert next_path.startswith("/oauth2/authorize?")
    assert "client_id=partage-portal" in next_path

    mfa = post_password(client, page, made.login, made.password)
    assert mfa.url.path == "/login/mfa"
    assert "Code de vérification" in mfa.text
    home = post_code(client, mfa, made.totp_now())

    assert home.status_code == 200
    assert home.url.path == "/"
    assert "Bonjour, Test hospital_physician" in home.text
    assert "Établissement de test" in home.text
    assert "Médecin hospitalier" in home.text
    assert "Retrouvez un patient et consultez ses documents" in home.text
    assert 'href="/dossier"' in home.text
    assert 'id="main"' in home.text
    assert "Aller au contenu" in home.text
    assert client.cookies.get("partage_portal")
    assert client.cookies.get("partage_sso")


def test_cookies_are_http_only_and_same_site(client: TestClient, make_account: MakeAccount) -> None:
    made = make_account(Profile.patient, totp=False)
    page = login_form(client)
    login_cookie = page.headers["set-cookie"].lower()
    assert "partage_login_csrf=" in login_cookie
    assert "httponly" in login_cookie
    assert "samesite=strict" in login_cookie

    response = client.post(
        "/login",
        data={
            "login": made.login,
            "password": made.password,
            "csrf_token": hidden(page.text, "csrf_token"),
            "next": "/",
        },
        headers=HTML,
        follow_redirects=False,
    )
    assert response.status_code == 303
    sso_cookie = response.headers["set-cookie"].lower()
    assert sso_cookie.startswith("partage_sso=")
    for attribute in ("httponly", "samesite=lax", "path=/"):
        assert attribute in sso_cookie
    assert "secure" not in sso_cookie  # plain http in tests; Secure under TLS

    start = client.get("/", headers=HTML, follow_redirects=False)
    assert start.status_code == 303
    flow_cookie = start.headers["set-cookie"].lower()
    assert "partage_portal_flow=" in flow_cookie
    assert "httponly" in flow_cookie
    authorize = urlsplit(start.headers["location"])
    assert authorize.path == "/oauth2/authorize"
    query = parse_qs(authorize.query)
    assert query["code_challenge_method"] == ["S256"]
    assert query["state"]
    assert query["nonce"]


def test_wrong_password_shows_one_generic_message(
    client: TestClient, make_account: MakeAccount
) -> None:
    made = make_account(Profile.city_physician)
    wrong = post_password(client, login_form(client), made.login, "not the password at all")
    unknown = post_password(client, login_form(client), unique("nobody"), "whatever it is")
    for page in (wrong, unknown):
        assert page.url.path == "/login"
        assert GENERIC_FAILURE in page.text
        assert LOCKED not in page.text
    assert not client.cookies.get("partage_sso")


def _fail_until_locked(client: TestClient, login: str, attempts: int) -> list[str]:
    messages = []
    for _ in range(attempts):
        page = post_password(client, login_form(client), login, "definitely wrong password")
        messages.append(LOCKED if LOCKED in page.text else GENERIC_FAILURE)
    return messages


def test_lock_out_after_n_failures_reads_the_same_for_unknown_logins(
    client: TestClient, platform: Platform, make_account: MakeAccount
) -> None:
    limit = platform.settings.login_max_failures
    made = make_account(Profile.nurse)
    expected = [GENERIC_FAILURE] * (limit - 1) + [LOCKED]
    assert _fail_until_locked(client, made.login, limit) == expected
    assert _fail_until_locked(client, unique("ghost"), limit) == expected

    # Locked: even the right password is refused, with the same message.
    page = post_password(client, login_form(client), made.login, made.password)
    assert LOCKED in page.text
    assert page.url.path == "/login"

    with transaction(platform.sessions) as session:
        account = service.get_account(session, login=made.login)
        assert account is not None
        actions.unlock_account(session, actor=operator_principal(), account=account)
    sign_in(client, made.login, made.password, made.totp_secret)


def test_wrong_codes_lock_the_account_too(
    client: TestClient, platform: Platform, make_account: MakeAccount
) -> None:
    made = make_account(Profile.pharmacist)
    mfa = post_password(client, login_form(client), made.login, made.password)
    for attempt in range(platform.settings.login_max_failures):
        mfa = post_code(client, mfa, "000000")
        if attempt < platform.settings.login_max_failures - 1:
            assert "Code incorrect." in mfa.text
    assert LOCKED in mfa.text
    assert mfa.url.path == "/login/mfa"
    assert not client.cookies.get("partage_sso")


def test_forms_without_the_right_csrf_token_are_refused(
    client: TestClient, make_account: MakeAccount
) -> None:
    made = make_account(Profile.territory_admin)
    login_form(client)
    forged = client.post(
        "/login",
        data={
            "login": made.login,
            "password": made.password,
            "csrf_token": "forged" * 8,
            "next": "/",
        },
        headers=HTML,
    )
    assert forged.status_code == 403
    assert "Formulaire expiré" in forged.text
    missing = client.post(
        "/login", data={"login": made.login, "password": made.password}, headers=HTML
    )
    assert missing.status_code == 403

    home = sign_in(client, made.login, made.password, made.totp_secret)
    assert client.post("/logout", data={"csrf_token": "wrong"}, headers=HTML).status_code == 403
    refused = client.post(
        "/admin/accounts",
        data={
            "login": unique("x"),
            "display_name": "X",
            "profile": "nurse",
            "password": "correct horse battery staple",
        },
        headers=HTML,
    )
    assert refused.status_code == 403
    # Still signed in: the refusals changed nothing.
    assert client.get("/", headers=HTML).url.path == "/"
    assert csrf_of(home.text)


def test_next_must_be_a_local_path(client: TestClient, make_account: MakeAccount) -> None:
    made = make_account(Profile.patient, totp=False)
    for target in ("//evil.example/x", "https://evil.example/", "/\\evil.example", "javascript:x"):
        page = client.get("/login", params={"next": target}, headers=HTML)
        assert hidden(page.text, "next") == "/"
        response = client.post(
            "/login",
            data={
                "login": made.login,
                "password": made.password,
                "csrf_token": hidden(page.text, "csrf_token"),
                "next": target,
            },
            headers=HTML,
            follow_redirects=False,
        )
        assert response.status_code == 303
        assert response.headers["location"] == "/"
    lang = client.get(
        "/lang", params={"to": "en", "next": "//evil.example"}, follow_redirects=False
    )
    assert lang.headers["location"] == "/"


def test_a_disabled_account_loses_its_portal_session_at_the_next_request(
    client: TestClient, platform: Platform, make_account: MakeAccount
) -> None:
    made = make_account(Profile.hospital_physician)
    sign_in(client, made.login, made.password, made.totp_secret)
    assert client.get("/", headers=HTML).url.path == "/"

    with transaction(platform.sessions) as session:
        account = service.get_account(session, login=made.login)
        assert account is not None
        actions.set_account_status(
            session, actor=operator_principal(), account=account, active=False
        )

    response = client.get("/", headers=HTML, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/oauth2/authorize?")
    assert 'partage_portal=""' in response.headers["set-cookie"] or (
        "partage_portal=;" in response.headers["set-cookie"]
    )
    assert client.get("/", headers=HTML).url.path == "/login"


def test_sign_out_ends_the_session_everywhere(
    client: TestClient, make_account: MakeAccount
) -> None:
    made = make_account(Profile.city_physician)
    home = sign_in(client, made.login, made.password, made.totp_secret)
    portal_cookie = client.cookies.get("partage_portal")
    sso_cookie = client.cookies.get("partage_sso")

    out = client.post("/logout", data={"csrf_token": csrf_of(home.text)}, headers=HTML)
    assert out.status_code == 200
    assert SIGNED_OUT in out.text
    assert 'action="/login"' in out.text
    assert not client.cookies.get("partage_portal")

    # The old cookies, replayed, open nothing: the SSO session has ended.
    client.cookies.set("partage_portal", portal_cookie or "")
    client.cookies.set("partage_sso", sso_cookie or "")
    assert client.get("/", headers=HTML).url.path == "/login"


def test_first_sign_in_enrols_an_authenticator(
    client: TestClient, make_account: MakeAccount
) -> None:
    made = make_account(Profile.identity_vigilance, totp=False)
    enrol = post_password(client, login_form(client), made.login, made.password)
    assert enrol.url.path == "/login/enrol"
    assert "<svg" in enrol.text
    assert 'viewBox="' in enrol.text
    assert " style=" not in enrol.text
    secret_match = re.search(r'<code class="secret">([A-Z2-7 ]+)</code>', enrol.text)
    assert secret_match is not None
    secret = secret_match.group(1).replace(" ", "")
    # A reload keeps the secret already scanned.
    again = client.get(enrol.url.path, params=dict(enrol.url.params), headers=HTML)
    assert secret_match.group(1) in again.text

    wrong = post_code(client, again, "123456")
    assert "Code incorrect." in wrong.text
    home = post_code(client, wrong, totp_code(secret))
    assert home.url.path == "/"
    assert "Référent(e) identitovigilance" in home.text
    assert "Doublons potentiels" in home.text


def test_patients_sign_in_with_a_password_and_may_add_a_second_factor(
    client: TestClient, make_account: MakeAccount
) -> None:
    made = make_account(Profile.patient, totp=False)
    home = sign_in(client, made.login, made.password, None)
    assert "Mes documents" in home.text
    security = client.get("/account/security", headers=HTML)
    assert "Non configurée" in security.text
    assert "clé d'accès" in security.text.replace("&#39;", "'")
    form = client.get("/account/security/totp", headers=HTML)
    secret_match = re.search(r'<code class="secret">([A-Z2-7 ]+)</code>', form.text)
    assert secret_match is not None
    done = client.post(
        "/account/security/totp",
        data={
            "code": totp_code(secret_match.group(1).replace(" ", "")),
            "csrf_token": hidden(form.text, "csrf_token"),
        },
        headers=HTML,
    )
    assert done.url.path == "/account/security"
    assert "authentification est configurée." in done.text
    assert "Configurée" in done.text


def test_the_demo_code_hint_shows_only_for_demo_accounts_in_demo_mode(
    client: TestClient, platform: Platform, make_account: MakeAccount
) -> None:
    demo = make_account(Profile.hospital_physician)
    real = make_account(Profile.hospital_physician)
    with transaction(platform.sessions) as session:
        session.execute(update(Account).where(Account.login == demo.login).values(is_demo=True))

    def hint_for(made: MadeAccount) -> bool:
        client.cookies.clear()
        page = post_password(client, login_form(client), made.login, made.password)
        assert page.url.path == "/login/mfa"
        return 'class="demo-hint"' in page.text

    assert not hint_for(demo)  # not in demo mode
    platform.settings.demo = True
    try:
        assert hint_for(demo)
        assert not hint_for(real)
    finally:
        platform.settings.demo = False
