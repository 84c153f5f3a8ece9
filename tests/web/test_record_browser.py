"""A patient's record in a real Chromium: a city doctor finds her patient, opens the record,
filters it (the list replaced in place by htmx), and opens a CDA report from the shared
record with the keyboard only: its sections and tables rendered, no script run, and no
Content-Security-Policy violation.

Skipped when Chromium or Playwright is missing, unless PARTAGE_REQUIRE_BROWSER=1.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from tests.conftest import MadeAccount
from tests.documents import cda_samples
from tests.web.test_browser import SCREENSHOTS, browser, page  # noqa: F401 - fixtures
from tests.web.test_identity_browser import _sign_in
from tests.web.test_record_pages import Territory, territory  # noqa: F401 - fixture

pytestmark = pytest.mark.browser


def _tab_to(tab: object, locator: object, limit: int = 200) -> None:
    """Press Tab until `locator` has the focus (keyboard only, as a reader without a mouse)."""
    from playwright.sync_api import Locator, Page, expect

    assert isinstance(tab, Page) and isinstance(locator, Locator)
    for _ in range(limit):
        if locator.evaluate("element => element === document.activeElement"):
            break
        tab.keyboard.press("Tab")
    expect(locator).to_be_focused()


def test_open_a_cda_report_from_the_record_with_the_keyboard(
    page: object,  # noqa: F811 - the fixture
    territory: Territory,  # noqa: F811 - the fixture
    make_account: Callable[..., MadeAccount],
) -> None:
    from playwright.sync_api import Page, expect

    from partage.security.models import Profile

    assert isinstance(page, Page)
    territory.put(
        "hostile", cda_samples.script_in_paragraph(), mime_type="text/xml", title="Hostile"
    )
    doctor = make_account(Profile.city_physician, establishment=territory.practice)
    _sign_in(page, doctor, "/dossier")
    expect(page.get_by_role("heading", level=1)).to_have_text("Trouver un patient")

    # Find her by the practice's IPP, with the keyboard.
    page.get_by_label("IPP").focus()
    page.keyboard.type(territory.practice_ipp)
    page.keyboard.press("Enter")
    expect(page.get_by_role("status")).to_have_text("1 patient trouvé")
    patient_link = page.locator(f'a[href="{territory.record}"]').last
    _tab_to(page, patient_link)
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(re.escape(territory.record) + "$"))
    expect(page.get_by_role("heading", level=1)).to_contain_text("Dossier de")
    timeline = page.locator("#timeline")
    expect(timeline.get_by_role("link", name="Compte rendu opératoire")).to_be_visible()
    expect(timeline.get_by_text("Consultation de psychiatrie")).to_have_count(0)
    page.screenshot(path=str(SCREENSHOTS / "partage-record.png"), full_page=True)

    # A filter replaces the list in place (htmx), and the address follows.
    page.evaluate("window.partageSamePage = 'yes'")
    page.get_by_label("Type", exact=True).select_option(label="Lettre de liaison de sortie")
    expect(timeline.get_by_role("link", name="Compte rendu opératoire")).to_have_count(0)
    expect(page).to_have_url(re.compile(r"type=11490-0"))
    assert page.evaluate("window.partageSamePage") == "yes"

    # The CDA report, opened with the keyboard.
    report = page.locator("#timeline").get_by_role("link", name="Lettre de liaison de sortie")
    _tab_to(page, report)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", level=1)).to_have_text("Lettre de liaison de sortie")
    view = page.locator(".cda-view")
    expect(view.get_by_role("heading", name="Motif d'hospitalisation")).to_be_visible()
    expect(view.get_by_role("heading", name="Examens")).to_be_visible()
    expect(view.get_by_role("table")).to_contain_text("Ionogramme")
    expect(view.get_by_role("img", name="Radio thorax")).to_be_visible()
    expect(page.get_by_role("link", name="Télécharger")).to_be_visible()
    page.screenshot(path=str(SCREENSHOTS / "partage-record-cda.png"), full_page=True)

    # A hostile document's script is shown as text, never run.
    page.goto(territory.document("hostile"))
    expect(page.locator(".cda-view")).to_contain_text("<script>alert(2)</script>")
    assert page.locator(".cda-view script").count() == 0

    # A PDF is framed from its sandboxed content route, without any violation of our CSP.
    page.goto(territory.document("report"))
    expect(page.locator("iframe.document-frame")).to_be_visible()
    # Chromium's own PDF viewer took the framed content: the PDF is shown inline.
    for _ in range(100):
        if any(frame.url.startswith("chrome-extension://") for frame in page.frames):
            break
        page.wait_for_timeout(100)
    assert any(frame.url.startswith("chrome-extension://") for frame in page.frames)
    page.screenshot(path=str(SCREENSHOTS / "partage-record-pdf.png"), full_page=True)
