"""Passkeys in a real Chromium with a virtual authenticator (WebAuthn over the DevTools
protocol): add one on the security page, then sign in with it instead of a TOTP code.

WebAuthn refuses IP addresses as relying party, so this server is addressed as localhost.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pyotp
import pytest
import uvicorn

from partage.app import create_app
from partage.audit.models import AuditEvent
from partage.db import transaction
from partage.platform import Platform
from partage.security import actions, service
from partage.security.authn import set_totp_secret
from partage.security.models import Profile, WebAuthnCredential
from partage.security.principal import operator_principal
from tests.conftest import TEST_PASSWORD, build_platform, free_port, unique
from tests.web.test_browser import browser  # noqa: F401 - the shared Chromium fixture

pytestmark = pytest.mark.browser


@pytest.fixture
def localhost_server(tmp_path: Path) -> Iterator[tuple[str, Platform]]:
    port = free_port()
    platform, database = build_platform(tmp_path, port)
    platform.settings.public_url = f"http://localhost:{port}"
    app = create_app(platform.settings, platform=platform)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert time.monotonic() < deadline, "the test server did not start"
        time.sleep(0.05)
    yield f"http://localhost:{port}", platform
    server.should_exit = True
    thread.join(timeout=10)
    platform.close()
    database.drop()


def test_add_a_passkey_then_sign_in_with_it(
    browser: object,  # noqa: F811
    localhost_server: tuple[str, Platform],
) -> None:
    from playwright.sync_api import Browser, expect

    assert isinstance(browser, Browser)
    base, platform = localhost_server
    login, secret = unique("pk-nurse"), pyotp.random_base32()
    with transaction(platform.sessions) as session:
        territory = service.get_territory(session, code="GHT-TEST")
        assert territory is not None
        home = actions.create_establishment(
            session,
            actor=operator_principal(),
            territory=territory,
            name="Cabinet infirmier",
            code=unique("IDE").upper(),
        )
        account = actions.create_account(
            session,
            platform.passwords,
            actor=operator_principal(),
            login=login,
            display_name="Inès Passkey",
            profile=Profile.nurse,
            password=TEST_PASSWORD,
            establishment=home,
        )
        set_totp_secret(platform, account, secret)

    context = browser.new_context(base_url=base, locale="fr-FR")
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    devtools = context.new_cdp_session(page)
    devtools.send("WebAuthn.enable")
    devtools.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
            }
        },
    )

    def sign_in_password() -> None:
        page.goto("/")
        page.get_by_label("Identifiant").fill(login)
        page.get_by_label("Mot de passe").fill(TEST_PASSWORD)
        page.get_by_role("button", name="Se connecter").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Code de vérification")

    sign_in_password()
    page.get_by_label("Code").fill(pyotp.TOTP(secret).now())
    page.get_by_role("button", name="Vérifier").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Bonjour, Inès Passkey")

    page.goto("/account/security")
    page.get_by_label("Nom de la clé").fill("Lecteur d'empreinte du cabinet")
    page.get_by_role("button", name="Ajouter une clé de sécurité ou une clé d'accès").click()
    expect(page.get_by_text("Votre clé de sécurité ou clé d'accès a été ajoutée.")).to_be_visible()
    expect(
        page.get_by_role("button", name="Retirer Lecteur d'empreinte du cabinet")
    ).to_be_visible()
    page.get_by_role("button", name="Se déconnecter").click()

    sign_in_password()
    page.get_by_role("button", name="Utiliser ma clé de sécurité ou ma clé d'accès").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Bonjour, Inès Passkey")
    expect(page).to_have_url(re.compile(r"/$"))
    context.close()

    with transaction(platform.read_sessions) as session:
        stored = session.query(WebAuthnCredential).one()
        assert stored.last_used_at is not None
        assert stored.sign_count >= 1
        events = [(e.action, e.outcome, e.detail.get("method")) for e in session.query(AuditEvent)]
    assert ("mfa.passkey_register", "success", None) in events
    assert ("auth.mfa", "success", "passkey") in events
    assert not problems, problems


@pytest.mark.parametrize(
    "credential", ["", "not json", '{"rawId": 12}', '{"rawId": "AAAA"}', "[1, 2, 3]"]
)
def test_a_forged_passkey_answer_is_refused_and_counted(
    client: object, make_account: object, credential: str
) -> None:
    from fastapi.testclient import TestClient

    from tests.web.helpers import HTML, hidden, login_form, post_password

    assert isinstance(client, TestClient)
    made = make_account(Profile.city_physician)  # type: ignore[operator]
    mfa = post_password(client, login_form(client), made.login, made.password)
    assert mfa.url.path == "/login/mfa"
    options = client.post(
        "/login/mfa/passkey/options", data={"csrf_token": hidden(mfa.text, "csrf_token")}
    )
    assert options.status_code == 200 and "challenge" in options.json()
    answer = client.post(
        "/login/mfa/passkey",
        data={"credential": credential, "csrf_token": hidden(mfa.text, "csrf_token"), "next": "/"},
        headers=HTML,
    )
    assert answer.status_code == 200
    assert answer.url.path == "/login/mfa"
    assert "n'a pas pu être vérifiée" in answer.text
    # Still not signed in: the home page sends us back to the sign-in.
    assert client.get("/", headers=HTML).url.path in ("/login", "/login/mfa")
