"""The portal in a real Chromium: sign-in with password and code, lock-out, keyboard only,
and no Content-Security-Policy violation on the pages.

Skipped when Chromium or Playwright is missing, unless PARTAGE_REQUIRE_BROWSER=1.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pyotp
import pytest

from partage.platform import Platform
from partage.security.models import Profile
from tests.conftest import MadeAccount, unique
from tests.web.helpers import LOCKED

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("PARTAGE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = Path(os.environ.get("PARTAGE_SCREENSHOTS", tempfile.gettempdir()))
MakeAccount = Callable[..., MadeAccount]


def _unavailable(reason: str) -> None:
    if os.environ.get("PARTAGE_REQUIRE_BROWSER") == "1":
        pytest.fail(f"browser tests required but {reason}")
    pytest.skip(f"browser tests skipped: {reason} (set PARTAGE_REQUIRE_BROWSER=1 to fail)")


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("Playwright is not installed")
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        _unavailable(f"no Chromium at {CHROMIUM}")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: object, live_server: str) -> Iterator[object]:
    """A fresh browser profile; fails the test on any CSP violation or script error."""
    from playwright.sync_api import Browser

    assert isinstance(browser, Browser)
    context = browser.new_context(base_url=live_server, locale="fr-FR")
    tab = context.new_page()
    problems: list[str] = []
    tab.on(
        "console",
        lambda message: (
            problems.append(message.text)
            if message.type == "error" or "Content Security Policy" in message.text
            else None
        ),
    )
    tab.on("pageerror", lambda error: problems.append(str(error)))
    yield tab
    context.close()
    assert not problems, "console errors or CSP violations:\n" + "\n".join(problems)


def _code(made: MadeAccount) -> str:
    assert made.totp_secret is not None
    return pyotp.TOTP(made.totp_secret).now()


def test_sign_in_with_password_and_code_then_sign_out(
    page: object, make_account: MakeAccount
) -> None:
    from playwright.sync_api import Page, expect

    assert isinstance(page, Page)
    made = make_account(Profile.hospital_physician)
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login\?next="))
    expect(page.locator("html")).to_have_attribute("lang", "fr")
    expect(page.get_by_role("heading", level=1)).to_have_text("Connexion à Partage")
    page.screenshot(path=str(SCREENSHOTS / "partage-login.png"), full_page=True)

    page.get_by_label("Identifiant").fill(made.login)
    page.get_by_label("Mot de passe").fill(made.password)
    page.get_by_role("button", name="Se connecter").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Code de vérification")
    page.get_by_label("Code").fill(_code(made))
    page.get_by_role("button", name="Vérifier").click()

    expect(page.get_by_role("heading", level=1)).to_have_text("Bonjour, Test hospital_physician")
    tile = page.get_by_text("Retrouvez un patient et consultez ses documents", exact=False)
    expect(tile).to_be_visible()
    expect(page.get_by_role("navigation", name="Menu principal")).to_be_visible()
    page.screenshot(path=str(SCREENSHOTS / "partage-home.png"), full_page=True)

    page.get_by_role("button", name="Se déconnecter").click()
    expect(page.get_by_text("Vous êtes déconnecté(e).")).to_be_visible()
    page.goto("/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Connexion à Partage")


def test_repeated_wrong_passwords_lock_the_account(
    page: object, platform: Platform, make_account: MakeAccount
) -> None:
    from playwright.sync_api import Page, expect

    assert isinstance(page, Page)
    made = make_account(Profile.city_physician)
    page.goto("/")
    for _ in range(platform.settings.login_max_failures):
        page.get_by_label("Identifiant").fill(made.login)
        page.get_by_label("Mot de passe").fill("a wrong password " + unique("x"))
        page.get_by_role("button", name="Se connecter").click()
        expect(page.get_by_role("alert")).to_be_visible()
    expect(page.get_by_role("alert")).to_have_text(LOCKED)

    page.get_by_label("Identifiant").fill(made.login)
    page.get_by_label("Mot de passe").fill(made.password)
    page.get_by_role("button", name="Se connecter").click()
    expect(page.get_by_role("alert")).to_have_text(LOCKED)
    expect(page.get_by_role("heading", level=1)).to_have_text("Connexion à Partage")


def test_keyboard_only_sign_in(page: object, make_account: MakeAccount) -> None:
    from playwright.sync_api import Page, expect

    assert isinstance(page, Page)
    made = make_account(Profile.pharmacist)
    page.goto("/")
    # Tab until the login field has focus (it may already have it).
    for _ in range(10):
        if page.evaluate("document.activeElement && document.activeElement.id") == "login":
            break
        page.keyboard.press("Tab")
    expect(page.locator("#login")).to_be_focused()
    page.keyboard.type(made.login)
    page.keyboard.press("Tab")
    expect(page.locator("#password")).to_be_focused()
    page.keyboard.type(made.password)
    page.keyboard.press("Enter")

    expect(page.locator("#code")).to_be_focused()
    page.keyboard.type(_code(made))
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", level=1)).to_have_text("Bonjour, Test pharmacist")

    # On a fresh page the first Tab reaches the skip link, which leads into the content.
    page.reload()
    page.keyboard.press("Tab")
    expect(page.locator(":focus")).to_have_text("Aller au contenu")
    page.keyboard.press("Enter")
    expect(page.locator("main")).to_be_focused()


def test_administration_with_htmx_has_no_csp_violation(
    page: object, make_account: MakeAccount
) -> None:
    from playwright.sync_api import Page, expect

    assert isinstance(page, Page)
    admin = make_account(Profile.territory_admin)
    target = make_account(Profile.nurse)
    page.goto("/admin/accounts")
    page.get_by_label("Identifiant").fill(admin.login)
    page.get_by_label("Mot de passe").fill(admin.password)
    page.get_by_role("button", name="Se connecter").click()
    page.get_by_label("Code").fill(_code(admin))
    page.get_by_role("button", name="Vérifier").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Comptes")

    page.get_by_label("Rechercher par identifiant ou nom").fill(target.login)
    page.get_by_role("button", name="Rechercher", exact=True).click()
    row = page.locator("tr", has_text=target.login)
    page.once("dialog", lambda dialog: dialog.accept())
    row.get_by_role("button", name="Désactiver").click()
    expect(row.get_by_text("Désactivé", exact=True)).to_be_visible()
    expect(row.get_by_role("button", name="Réactiver")).to_be_focused()
    page.screenshot(path=str(SCREENSHOTS / "partage-admin.png"), full_page=True)
    row.get_by_role("button", name="Réactiver").click()
    expect(row.get_by_text("Actif", exact=True)).to_be_visible()

    for path in ("/admin/clients", "/admin/establishments", "/account/security"):
        page.goto(path)
        expect(page.locator("main h1")).to_be_visible()
