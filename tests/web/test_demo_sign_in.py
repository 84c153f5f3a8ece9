"""What a newcomer does after `make run`: sign in as each demo account and land on a French
home page. The demo is seeded in a database of its own (fixed logins)."""

from __future__ import annotations

import html

import pytest
from fastapi.testclient import TestClient

from partage.app import create_app
from partage.db import transaction
from partage.demo import DemoTerritory, seed_demo_territory
from partage.platform import Platform
from partage.security.principal import operator_principal
from tests.web.helpers import HTML, sign_in


@pytest.fixture
def demo(fresh_platform: Platform) -> tuple[Platform, DemoTerritory]:
    with transaction(fresh_platform.sessions) as session:
        seeded = seed_demo_territory(session, fresh_platform, actor=operator_principal())
    return fresh_platform, seeded


def test_every_demo_account_signs_in_to_a_french_home_page(
    demo: tuple[Platform, DemoTerritory],
) -> None:
    platform, seeded = demo
    app = create_app(platform.settings, platform=platform)
    assert {login.profile for login in seeded.logins} >= {
        "hospital_physician",
        "city_physician",
        "pharmacist",
        "nurse",
        "patient",
        "identity_vigilance",
        "establishment_admin",
        "territory_admin",
    }
    for login in seeded.logins:
        with TestClient(app, base_url=platform.settings.issuer) as browser:
            home = sign_in(browser, login.login, login.password, login.totp_secret)
            assert '<html lang="fr">' in home.text
            assert f"Bonjour, {login.display_name}" in html.unescape(home.text)
            assert browser.get("/", headers=HTML).status_code == 200
