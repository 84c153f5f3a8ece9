"""The directory in a real Chromium: type-ahead without reloading the page, keyboard only to
a professional's page, and no Content-Security-Policy violation (the chart included).

Skipped when Chromium or Playwright is missing, unless PARTAGE_REQUIRE_BROWSER=1.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from partage.security.models import Profile
from tests.conftest import MadeAccount, free_port, serving
from tests.web.test_browser import SCREENSHOTS, browser  # noqa: F401 - the Chromium fixture
from tests.web.test_directory_pages import DirectorySite, build_directory_site

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def directory_server(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[DirectorySite, str]]:
    port = free_port()
    site, database = build_directory_site(tmp_path_factory.mktemp("directory-browser"), port)
    with serving(site.app, port) as base:
        yield site, base
    site.platform.close()
    database.drop()


@pytest.fixture
def page(browser: object, directory_server: tuple[DirectorySite, str]) -> Iterator[object]:  # noqa: F811
    """A fresh browser profile; fails the test on any CSP violation or script error."""
    from playwright.sync_api import Browser

    assert isinstance(browser, Browser)
    context = browser.new_context(base_url=directory_server[1], locale="fr-FR")
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


def _sign_in(page: object, made: MadeAccount, path: str) -> None:
    from playwright.sync_api import Page

    assert isinstance(page, Page)
    page.goto(path)
    page.get_by_label("Identifiant").fill(made.login)
    page.get_by_label("Mot de passe").fill(made.password)
    page.get_by_role("button", name="Se connecter").click()
    page.get_by_label("Code").fill(made.totp_now())
    page.get_by_role("button", name="Vérifier").click()


def test_type_ahead_then_keyboard_to_a_professional(
    page: object, directory_server: tuple[DirectorySite, str]
) -> None:
    from playwright.sync_api import Page, expect

    assert isinstance(page, Page)
    site, _ = directory_server
    _sign_in(page, site.make_account(Profile.city_physician), "/annuaire")
    expect(page.get_by_role("heading", level=1)).to_have_text("Annuaire du territoire")
    expect(page.get_by_text("Saisissez un nom, ou choisissez")).to_be_visible()
    # A mark on this document: it would be gone if the page reloaded.
    page.evaluate("window.partageTypeAhead = 'same page'")

    name_box = page.get_by_label("Nom du professionnel")
    name_box.press_sequentially("lefev", delay=40)
    results = page.locator("#directory-results")
    expect(results.get_by_role("link", name="LEFÈVRE Marie")).to_be_visible()
    expect(page.get_by_role("status")).to_have_text(re.compile(r"\d+ professionnels? trouvés?"))
    expect(page).to_have_url(re.compile(r"/annuaire\?.*q=lefev"))
    assert page.evaluate("window.partageTypeAhead") == "same page"
    expect(name_box).to_be_focused()  # typing was never interrupted

    # A filter replaces the results in place too.
    name_box.fill("quemen")
    expect(results.get_by_role("heading", level=3)).to_have_count(2)
    page.get_by_label("Profession", exact=True).select_option(label="Infirmier")
    expect(results.get_by_role("link", name="QUÉMÉNEUR Hélène")).to_be_visible()
    expect(results.get_by_role("link", name="QUEMENER Paul")).to_have_count(0)
    assert page.evaluate("window.partageTypeAhead") == "same page"
    page.screenshot(path=str(SCREENSHOTS / "partage-directory-search.png"), full_page=True)

    # Keyboard only: from the name box, Tab through the form to the first result, Enter.
    page.get_by_label("Profession", exact=True).select_option(value="")
    name_box.fill("lefevre")
    expect(page).to_have_url(re.compile(r"q=lefevre"))
    # Nothing left in flight: a late answer would replace the results under the focus.
    expect(page.locator(".htmx-request")).to_have_count(0)
    expect(results.get_by_role("link", name="LEFÈVRE Marie")).to_be_visible()
    name_box.focus()
    for _ in range(30):
        if page.evaluate("document.activeElement && document.activeElement.textContent") == (
            "LEFÈVRE Marie"
        ):
            break
        page.keyboard.press("Tab")
    expect(results.get_by_role("link", name="LEFÈVRE Marie")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/annuaire/professionnels/[0-9a-f-]+$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("LEFÈVRE Marie")
    expect(page.get_by_role("heading", name="Activités en cours")).to_be_visible()
    page.screenshot(path=str(SCREENSHOTS / "partage-directory-practitioner.png"), full_page=True)


def test_next_page_and_import_history_without_csp_violation(
    page: object, directory_server: tuple[DirectorySite, str]
) -> None:
    from playwright.sync_api import Page, expect

    assert isinstance(page, Page)
    site, _ = directory_server
    _sign_in(page, site.make_account(Profile.territory_admin), "/annuaire?profession=10")
    results = page.locator("#directory-results")
    first = results.get_by_role("heading", level=3).first.inner_text()
    page.get_by_role("link", name="Suivant").click()
    # The next page replaces the results and brings the reader to their start.
    expect(page.locator("#directory-results-title")).to_be_focused()
    expect(results.get_by_role("heading", level=3).first).not_to_have_text(first)
    expect(page).to_have_url(re.compile(r"page="))

    page.get_by_role("link", name="Imports de l'annuaire").first.click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Imports de l'annuaire")
    expect(page.get_by_role("img", name="Lignes par import")).to_be_visible()
    page.screenshot(path=str(SCREENSHOTS / "partage-directory-imports.png"), full_page=True)
    page.get_by_role("link", name=site.rpps_file).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Rapport d'import")
    expect(page.get_by_role("cell", name=str(site.rejected_lines[0]), exact=True)).to_be_visible()
