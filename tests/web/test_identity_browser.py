"""The identity-vigilance console in a real Chromium: from the queue to a review, the reason
typed and the link confirmed with the keyboard only, the page updated in place (htmx), and
no Content-Security-Policy violation (the SVG charts included).

Skipped when Chromium or Playwright is missing, unless PARTAGE_REQUIRE_BROWSER=1.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from partage.platform import Platform
from partage.security.models import Establishment, Profile
from tests.conftest import MadeAccount
from tests.web.test_browser import SCREENSHOTS, browser, page  # noqa: F401 - fixtures
from tests.web.test_identity_pages import make_pair, person_of

pytestmark = pytest.mark.browser


def _sign_in(tab: object, made: MadeAccount, path: str) -> None:
    from playwright.sync_api import Page

    assert isinstance(tab, Page)
    tab.goto(path)
    tab.get_by_label("Identifiant").fill(made.login)
    tab.get_by_label("Mot de passe").fill(made.password)
    tab.get_by_role("button", name="Se connecter").click()
    tab.get_by_label("Code").fill(made.totp_now())
    tab.get_by_role("button", name="Vérifier").click()


def test_link_a_review_with_the_keyboard(
    page: object,  # noqa: F811 - the fixture
    platform: Platform,
    make_account: Callable[..., MadeAccount],
    make_establishment: Callable[..., Establishment],
) -> None:
    from playwright.sync_api import Page, expect

    assert isinstance(page, Page)
    pair = make_pair(platform, make_establishment)
    _sign_in(page, make_account(Profile.identity_vigilance), "/identitovigilance/doublons")
    expect(page.get_by_role("heading", level=1)).to_have_text("Doublons potentiels")
    page.screenshot(path=str(SCREENSHOTS / "partage-identity-queue.png"), full_page=True)

    # Keyboard only: Tab to this pair's "Examiner" link, Enter.
    review_link = page.locator(f'a[href="{pair.url}"]')
    expect(review_link).to_be_visible()
    for _ in range(200):
        if page.evaluate(
            "document.activeElement && document.activeElement.getAttribute('href')"
        ) == (pair.url):
            break
        page.keyboard.press("Tab")
    expect(review_link).to_be_focused()
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(re.escape(pair.url) + "$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Doublon potentiel")
    differences = page.locator("table.compare strong", has_text="Différent")
    expect(differences.first).to_be_visible()
    expect(page.get_by_role("img", name="Poids de chaque trait")).to_be_visible()
    # A mark on this document: it would be gone if the page reloaded.
    page.evaluate("window.partageSamePage = 'yes'")
    page.screenshot(path=str(SCREENSHOTS / "partage-identity-review.png"), full_page=True)

    reason = page.get_by_label("Motif du rattachement")
    reason.focus()
    page.keyboard.type("Même patiente : date de naissance mal saisie à l'accueil")
    page.keyboard.press("Tab")
    confirm = page.get_by_role("button", name="Même personne (rattacher)")
    expect(confirm).to_be_focused()
    page.keyboard.press("Enter")

    notice = page.get_by_role("status").filter(has_text="Rattachement fait")
    expect(notice).to_be_visible()
    expect(notice).to_be_focused()  # the result is where the reader is
    expect(page.get_by_role("heading", name="Décision prise")).to_be_visible()
    expect(page.get_by_role("button", name="Même personne (rattacher)")).to_have_count(0)
    assert page.evaluate("window.partageSamePage") == "yes"  # swapped in place by htmx
    page.screenshot(path=str(SCREENSHOTS / "partage-identity-linked.png"), full_page=True)
    assert person_of(platform, pair.first_id) == person_of(platform, pair.second_id)

    # The person now has both identities; the dashboard's charts draw without violation.
    page.get_by_role("link", name=re.compile(r"^[0-9a-f]{8}.* · identités : 2$")).first.click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Personne territoriale")
    expect(page.get_by_role("heading", name="2 identités")).to_be_visible()
    page.screenshot(path=str(SCREENSHOTS / "partage-identity-person.png"), full_page=True)
    page.locator("article h3 a").first.click()
    expect(page.get_by_role("heading", name="Modifier le statut")).to_be_visible()
    page.screenshot(path=str(SCREENSHOTS / "partage-identity-local.png"), full_page=True)
    page.get_by_role("link", name="Tableau de bord").click()
    expect(
        page.get_by_role("img", name="Rattachements par jour, 30 derniers jours")
    ).to_be_visible()
    expect(page.get_by_role("img", name="Identités par statut")).to_be_visible()
    page.screenshot(path=str(SCREENSHOTS / "partage-identity-dashboard.png"), full_page=True)
