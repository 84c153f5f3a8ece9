"""Portal pages through HTTP: home per profile, administration, languages, error pages."""

from __future__ import annotations

import html
import re
from collections.abc import Callable

import httpx
import pytest
from fastapi.testclient import TestClient

from partage.db import transaction
from partage.platform import Platform
from partage.security import service
from partage.security.models import Establishment, Profile
from tests.conftest import TEST_PASSWORD, MadeAccount, unique
from tests.web.helpers import HTML, csrf_of, hidden, login_form, sign_in

MakeAccount = Callable[..., MadeAccount]
HTMX = {**HTML, "HX-Request": "true"}

HOME_EXPECTATIONS = {
    Profile.hospital_physician: ("Médecin hospitalier", "Imagerie"),
    Profile.city_physician: ("Médecin de ville", "Mes patients"),
    Profile.pharmacist: ("Pharmacien(ne)", "Messagerie sécurisée"),
    Profile.nurse: ("Infirmier(ère)", "Dossier partagé"),
    Profile.patient: ("Patient(e)", "Qui a consulté mon dossier"),
    Profile.identity_vigilance: ("Référent(e) identitovigilance", "Identités et INS"),
    Profile.establishment_admin: ("Administrateur(trice) d'établissement", "Comptes"),
    Profile.territory_admin: ("Administrateur(trice) du territoire", "Établissements"),
}


def signed_in(client: TestClient, made: MadeAccount, path: str = "/") -> str:
    return sign_in(client, made.login, made.password, made.totp_secret, path=path).text


def text_of(response: httpx.Response) -> str:
    """The page as a person reads it (entities decoded)."""
    return html.unescape(response.text)


@pytest.mark.parametrize("profile", list(Profile))
def test_each_profile_has_its_home_page(
    client: TestClient, make_account: MakeAccount, profile: Profile
) -> None:
    made = make_account(profile, totp=profile is not Profile.patient)
    page = signed_in(client, made)
    label, tile = HOME_EXPECTATIONS[profile]
    assert f"Bonjour, Test {profile.value}" in page
    assert label in page
    assert tile in page
    assert '<nav class="main-nav" aria-label="Menu principal">' in page
    assert 'action="/logout"' in page
    admin_link = 'href="/admin/accounts"' in page
    assert admin_link == (profile in (Profile.territory_admin, Profile.establishment_admin))
    # Features still to come say so; nothing pretends to be data.
    assert ("Bientôt disponible" in page) == (
        profile not in (Profile.establishment_admin, Profile.identity_vigilance)
    )


def test_territory_admin_manages_accounts_clients_and_establishments(
    client: TestClient, make_account: MakeAccount, make_establishment: Callable[..., Establishment]
) -> None:
    admin = make_account(Profile.territory_admin)
    establishment = make_establishment()
    page = signed_in(client, admin, "/admin/accounts")
    assert "<h1>Comptes</h1>" in page
    token = csrf_of(page)

    login = unique("new-nurse")
    created = client.post(
        "/admin/accounts",
        data={
            "csrf_token": token,
            "login": login,
            "display_name": "Nouvelle Infirmière",
            "profile": "nurse",
            "establishment": establishment.code,
            "password": TEST_PASSWORD,
        },
        headers=HTML,
    )
    assert created.status_code == 200
    assert "Le compte a été créé." in created.text
    assert login in created.text

    refused = client.post(
        "/admin/accounts",
        data={
            "csrf_token": token,
            "login": login,
            "display_name": "Doublon",
            "profile": "nurse",
            "password": TEST_PASSWORD,
        },
        headers=HTML,
    )
    assert refused.status_code == 422
    assert f"L'identifiant {login} est déjà pris." in text_of(refused)
    weak = client.post(
        "/admin/accounts",
        data={
            "csrf_token": token,
            "login": unique("weak"),
            "display_name": "Faible",
            "profile": "patient",
            "password": "short",
        },
        headers=HTML,
    )
    assert "Mot de passe refusé : il faut au moins 12 caractères." in weak.text

    account_id = re.search(rf'<tr id="account-([0-9a-f-]+)">\s*<td><code>{login}', created.text)
    assert account_id is not None
    base = f"/admin/accounts/{account_id.group(1)}"
    row = client.post(f"{base}/disable", headers={**HTMX, "X-CSRF-Token": token})
    assert row.status_code == 200
    assert row.text.lstrip().startswith("<tr")
    assert "Désactivé" in row.text
    assert f"{base}/enable" in row.text
    assert 'hx-swap-oob="true"' in row.text
    plain = client.post(f"{base}/enable", data={"csrf_token": token}, headers=HTML)
    assert plain.url.path == "/admin/accounts"
    assert "Le compte a été réactivé." in plain.text
    unlocked = client.post(f"{base}/unlock", data={"csrf_token": token}, headers=HTML)
    assert "Le compte a été déverrouillé." in unlocked.text

    clients = client.get("/admin/clients", headers=HTML)
    assert "partage-portal" in clients.text
    app_name = unique("DPI")
    new_client = client.post(
        "/admin/clients",
        data={"csrf_token": token, "name": app_name, "scopes": "system/*.rs"},
        headers=HTML,
    )
    assert new_client.status_code == 201
    secret = re.search(r'<dd><code class="secret">([^<]+)</code></dd>', new_client.text)
    assert secret is not None
    assert len(secret.group(1)) >= 40
    assert "il ne sera plus affiché" in new_client.text
    client_id = re.search(r"<dt>client_id</dt><dd><code>([^<]+)</code>", new_client.text)
    assert client_id is not None
    # Shown once: the list does not show it again.
    assert secret.group(1) not in client.get("/admin/clients", headers=HTML).text
    revoked = client.post(
        f"/admin/clients/{client_id.group(1)}/revoke", headers={**HTMX, "X-CSRF-Token": token}
    )
    assert "Révoquée" in revoked.text

    code = unique("CH").upper()
    new_establishment = client.post(
        "/admin/establishments",
        data={
            "csrf_token": token,
            "name": "Centre hospitalier de test",
            "code": code,
            "kind": "hospital",
            "city": "Loudun",
        },
        headers=HTML,
    )
    assert "L'établissement a été créé." in text_of(new_establishment)
    assert code in new_establishment.text
    bad = client.post(
        "/admin/establishments",
        data={"csrf_token": token, "name": "X", "code": "x", "kind": "hospital"},
        headers=HTML,
    )
    assert bad.status_code == 422
    assert "Le code de domaine compte de 2 à 32 majuscules" in bad.text


def test_administration_is_not_found_for_a_physician(
    client: TestClient, make_account: MakeAccount
) -> None:
    made = make_account(Profile.hospital_physician)
    home = signed_in(client, made)
    for path in ("/admin/accounts", "/admin/clients", "/admin/establishments"):
        page = client.get(path, headers=HTML)
        assert page.status_code == 404
        assert "Page introuvable" in page.text
    forged = client.post(
        "/admin/accounts",
        data={
            "csrf_token": csrf_of(home),
            "login": unique("x"),
            "display_name": "X",
            "profile": "territory_admin",
            "password": TEST_PASSWORD,
        },
        headers=HTML,
    )
    assert forged.status_code == 404


def test_establishment_admin_sees_only_their_establishment(
    client: TestClient,
    platform: Platform,
    make_account: MakeAccount,
    make_establishment: Callable[..., Establishment],
) -> None:
    own = make_establishment()
    admin = make_account(Profile.establishment_admin, establishment=own)
    colleague = make_account(Profile.nurse, establishment=own)
    stranger = make_account(Profile.nurse)
    page = signed_in(client, admin, "/admin/accounts")
    assert colleague.login in page
    assert stranger.login not in page
    assert 'name="login"' in page  # may create accounts of their establishment
    assert "/admin/establishments" not in page
    establishments = client.get("/admin/establishments", headers=HTML)
    assert establishments.status_code == 200  # the access rules let them read the list
    assert 'action="/admin/establishments"' not in establishments.text
    clients = client.get("/admin/clients", headers=HTML)
    assert clients.status_code == 200
    assert 'action="/admin/clients"' not in clients.text  # reading only

    with transaction(platform.sessions) as session:
        stranger_account = service.get_account(session, login=stranger.login)
        assert stranger_account is not None
        stranger_id = stranger_account.id
    refused = client.post(
        f"/admin/accounts/{stranger_id}/disable",
        data={"csrf_token": csrf_of(page)},
        headers=HTML,
    )
    assert refused.status_code == 404
    assert "Page introuvable" in refused.text

    # A hand-made form cannot make a territory administrator either.
    climbing = client.post(
        "/admin/accounts",
        data={
            "csrf_token": csrf_of(page),
            "login": "escalade-" + own.code.lower(),
            "display_name": "Escalade",
            "profile": "territory_admin",
            "establishment": own.code,
            "password": TEST_PASSWORD,
        },
        headers=HTML,
    )
    assert climbing.status_code == 404
    with transaction(platform.sessions) as session:
        assert service.get_account(session, login="escalade-" + own.code.lower()) is None


def test_language_switch_and_browser_preference(client: TestClient) -> None:
    french = login_form(client)
    assert '<html lang="fr">' in french.text
    assert "Connexion à Partage" in french.text
    link = re.search(r'href="(/lang\?to=en[^"]*)"', french.text)
    assert link is not None
    english = client.get(link.group(1).replace("&amp;", "&"), headers=HTML)
    assert english.url.path == "/login"
    assert '<html lang="en">' in english.text
    assert "Sign in to Partage" in english.text
    assert "Skip to content" in english.text
    assert client.cookies.get("lang") == "en"

    client.cookies.clear()
    by_browser = client.get("/login", headers={**HTML, "Accept-Language": "en-GB,en;q=0.8"})
    assert '<html lang="en">' in by_browser.text
    other = client.get("/login", headers={**HTML, "Accept-Language": "de-DE,de;q=0.9"})
    assert '<html lang="fr">' in other.text


def test_error_pages_are_readable_for_people_and_json_for_programs(client: TestClient) -> None:
    page = client.get("/no/such/page", headers=HTML)
    assert page.status_code == 404
    assert "Page introuvable" in page.text
    assert '<html lang="fr">' in page.text
    data = client.get("/no/such/page", headers={"Accept": "application/json"})
    assert data.status_code == 404
    assert data.json() == {"detail": "Not Found"}
    api = client.get("/api/v1/nothing", headers=HTML)
    assert api.headers["content-type"].startswith("application/json")

    unknown_client = client.get(
        "/oauth2/authorize",
        params={
            "client_id": "nope",
            "redirect_uri": "https://x.example/cb",
            "response_type": "code",
        },
        headers=HTML,
    )
    assert unknown_client.status_code == 400
    assert "Application inconnue" in unknown_client.text

    expired = client.get("/portal/callback", params={"code": "x", "state": "y"}, headers=HTML)
    assert expired.status_code == 400
    assert "Connexion expirée" in expired.text


def test_a_callback_with_someone_elses_state_is_refused(
    client: TestClient, make_account: MakeAccount
) -> None:
    made = make_account(Profile.patient, totp=False)
    page = login_form(client)
    response = client.post(
        "/login",
        data={
            "login": made.login,
            "password": made.password,
            "csrf_token": hidden(page.text, "csrf_token"),
            "next": hidden(page.text, "next"),
        },
        headers=HTML,
        follow_redirects=False,
    )
    authorize = client.get(response.headers["location"], follow_redirects=False)
    callback = authorize.headers["location"]
    assert "/portal/callback?code=" in callback
    tampered = re.sub(r"state=[^&]+", "state=forged", callback)
    refused = client.get(tampered, headers=HTML)
    assert refused.status_code == 400
    assert not client.cookies.get("partage_portal")
