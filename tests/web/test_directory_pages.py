"""The directory in the portal, through HTTP: search (names without accents, filters, paging,
structures), a professional's and a structure's pages, languages, who may see them, and
the administrators' import history with its rejected rows.

The directory is loaded into a platform of this module's own: an import closes the roles it
does not list, which would disturb tests sharing the session's platform.
"""

from __future__ import annotations

import html
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pyotp
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from partage.app import create_app
from partage.db import transaction
from partage.directory import finess, rpps
from partage.directory.service import practitioner_by_national_id
from partage.platform import Platform
from partage.security import actions
from partage.security.authn import set_totp_secret
from partage.security.models import EstablishmentKind, Profile
from partage.security.principal import operator_principal
from partage.security.service import get_territory
from tests.conftest import (
    TEST_PASSWORD,
    MadeAccount,
    build_platform,
    free_port,
    unique,
)
from tests.conftest import TestDatabase as Database
from tests.directory.extracts import import_finess_rows, import_rpps_rows, rpps_row, site_number
from tests.web.helpers import HTML, sign_in

HTMX = {**HTML, "HX-Request": "true"}
SYNTHETIC_PROFESSIONALS = 60


@dataclass
class DirectorySite:
    platform: Platform
    app: FastAPI
    chu_site: str
    # The last RPPS import, and the lines of its rows the importer rejects.
    rpps_file: str
    rejected_lines: list[int]

    def make_account(self, profile: Profile) -> MadeAccount:
        """A new account each time: a TOTP code is accepted once, so each sign-in needs its
        own account within one time step."""
        secret = None if profile is Profile.patient else pyotp.random_base32()
        with transaction(self.platform.sessions) as session:
            territory = get_territory(session, code="GHT-TEST")
            assert territory is not None
            establishment = None
            if profile is not Profile.patient:
                establishment = actions.create_establishment(
                    session,
                    actor=operator_principal(),
                    territory=territory,
                    name="Cabinet de test",
                    code=unique("CAB").upper(),
                    kind=EstablishmentKind.city_practice,
                )
            account = actions.create_account(
                session,
                self.platform.passwords,
                actor=operator_principal(),
                login=unique(profile.value.replace("_", "-")),
                display_name=f"Test {profile.value}",
                profile=profile,
                password=TEST_PASSWORD,
                establishment=establishment,
            )
            if secret:
                set_totp_secret(self.platform, account, secret)
        return MadeAccount(account, account.login, TEST_PASSWORD, secret)

    def client(self) -> TestClient:
        return TestClient(self.app, base_url=self.platform.settings.issuer)

    def practitioner_id(self, rpps_number: str) -> uuid.UUID:
        with transaction(self.platform.read_sessions) as session:
            found = practitioner_by_national_id(session, national_id="8" + rpps_number)
            assert found is not None
            return found.id


def load_directory(platform: Platform) -> tuple[str, str, list[int]]:
    """A FINESS extract, then two RPPS extracts: the second no longer lists one of LE GALL's
    activities nor QUIDAM, and both carry rows the importer rejects."""
    sites = list(finess.synthetic_rows(3))
    chu_site = site_number(sites[0])
    import_finess_rows(platform, sites)
    kept = [
        rpps_row("10000000001", "LEFÈVRE", "Marie"),
        rpps_row("10000000002", "LEFEBVRE", "Jean-Pierre", specialty=("SM02", "Cardiologie")),
        rpps_row("10000000003", "LE GALL", "Anaïs", structure="C99000000002"),
        rpps_row(
            "10000000005",
            "QUÉMÉNEUR",
            "Hélène",
            profession=("60", "Infirmier"),
            specialty=("", ""),
            structure="C99000000005",
            city=("86200", "86137", "Loudun"),
        ),
        rpps_row(
            "10000000006",
            "QUEMENER",
            "Paul",
            specialty=("SM02", "Cardiologie"),
            structure="C99000000006",
        ),
        # A practice the extract attaches to the CHU's FINESS site: shown as the CHU.
        rpps_row(
            "10000000008",
            "VASSEUR",
            "Inès",
            specialty=("SM04", "Anesthésie-réanimation"),
            structure="C99000000008",
            finess_site=chu_site,
        ),
        *rpps.synthetic_rows(SYNTHETIC_PROFESSIONALS, seed=11),
    ]
    dropped = [
        rpps_row(
            "10000000003",
            "LE GALL",
            "Anaïs",
            structure="C99000000003",
            finess_site=chu_site,
            city=("86100", "86066", "Châtellerault"),
        ),
        rpps_row("10000000007", "QUIDAM", "Luc", structure="C99000000007"),
    ]
    bad = ["8|123|8123|" + "|" * (len(rpps.COLUMNS) - 3), "not|a|row|"]
    for file_name, rows in (("rpps-1.txt", kept + dropped + bad), ("rpps-2.txt", kept + bad)):
        import_rpps_rows(platform, rows, file_name)
    first_bad_line = 2 + len(kept)  # after the header and the rows kept
    return chu_site, "rpps-2.txt", [first_bad_line, first_bad_line + 1]


def build_directory_site(tmp_dir: Path, port: int) -> tuple[DirectorySite, Database]:
    platform, database = build_platform(tmp_dir, port)
    chu_site, rpps_file, rejected_lines = load_directory(platform)
    app = create_app(platform.settings, platform=platform)
    return DirectorySite(platform, app, chu_site, rpps_file, rejected_lines), database


@pytest.fixture(scope="module")
def directory_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DirectorySite]:
    site, database = build_directory_site(tmp_path_factory.mktemp("directory-pages"), free_port())
    yield site
    site.platform.close()
    database.drop()


def signed_in(site: DirectorySite, profile: Profile, path: str = "/") -> TestClient:
    client = site.client()
    made = site.make_account(profile)
    sign_in(client, made.login, made.password, made.totp_secret, path=path)
    return client


def text_of(response: httpx.Response) -> str:
    return html.unescape(response.text)


def results_of(response: httpx.Response) -> str:
    """The results section of a page (or the fragment htmx swaps in)."""
    match = re.search(r'<section id="directory-results".*?</section>', response.text, re.S)
    assert match is not None, "no results section"
    return html.unescape(match.group(0))


def result_names(response: httpx.Response) -> list[str]:
    return re.findall(r'<h3><a href="/annuaire/[^"]+">([^<]+)</a>', results_of(response))


@pytest.fixture(scope="module")
def physician(directory_site: DirectorySite) -> Iterator[TestClient]:
    with signed_in(directory_site, Profile.city_physician) as client:
        yield client


def test_a_name_without_accents_finds_the_professional(physician: TestClient) -> None:
    page = physician.get("/annuaire", params={"q": "lefevre"}, headers=HTML)
    assert page.status_code == 200
    assert "<h1>Annuaire du territoire</h1>" in page.text
    names = result_names(page)
    assert "LEFÈVRE Marie" in names
    assert not any(name.startswith("LEFEBVRE") for name in names)
    assert "Médecin · Médecine générale" in results_of(page)
    assert "CABINET LEFÈVRE" in results_of(page)
    count = re.search(r'<p id="directory-count"[^>]*aria-live="polite"[^>]*>([^<]*)</p>', page.text)
    assert count is not None
    assert re.fullmatch(r"\d+ professionnels? trouvés?", count.group(1).strip())
    # Typing ahead: htmx gets the results alone, and the count for the live region.
    fragment = physician.get("/annuaire", params={"q": "LEFÈV"}, headers=HTMX)
    assert fragment.text.lstrip().startswith('<section id="directory-results"')
    assert "<html" not in fragment.text
    assert 'id="directory-count" hx-swap-oob="innerHTML"' in fragment.text
    assert "LEFÈVRE Marie" in result_names(fragment)


def test_filters_by_profession_specialty_and_city(physician: TestClient) -> None:
    page = physician.get("/annuaire", params={"q": "quemen"}, headers=HTML)
    assert result_names(page) == ["QUEMENER Paul", "QUÉMÉNEUR Hélène"]
    assert '<option value="60">Infirmier</option>' in page.text
    assert '<option value="SM02">Cardiologie</option>' in page.text
    nurses = physician.get("/annuaire", params={"q": "quemen", "profession": "60"}, headers=HTML)
    assert result_names(nurses) == ["QUÉMÉNEUR Hélène"]
    assert "1 professionnel trouvé" in nurses.text
    cardiology = physician.get(
        "/annuaire", params={"q": "quemen", "specialty": "SM02"}, headers=HTML
    )
    assert result_names(cardiology) == ["QUEMENER Paul"]
    in_loudun = physician.get("/annuaire", params={"q": "quemen", "city": "loudun"}, headers=HTML)
    assert result_names(in_loudun) == ["QUÉMÉNEUR Hélène"]
    wildcards = physician.get("/annuaire", params={"q": "%_"}, headers=HTML)
    assert wildcards.status_code == 200
    assert result_names(wildcards) == []
    only_an_accent = physician.get("/annuaire", params={"q": "\u0301"}, headers=HTML)
    assert only_an_accent.status_code == 422
    assert "Cette recherche ne peut pas aboutir" in text_of(only_an_accent)
    nobody = physician.get(
        "/annuaire", params={"q": "quemen", "city": "loudun", "profession": "10"}, headers=HTML
    )
    assert result_names(nobody) == []
    assert "Aucun résultat pour cette recherche." in text_of(nobody)
    # Who no longer practises is found only when asked for.
    assert result_names(physician.get("/annuaire", params={"q": "quidam"}, headers=HTML)) == []
    retired = physician.get("/annuaire", params={"q": "quidam", "inactive": "on"}, headers=HTML)
    assert result_names(retired) == ["QUIDAM Luc"]
    assert "Sans activité en cours" in results_of(retired)


def test_paging_with_next(physician: TestClient) -> None:
    first = physician.get("/annuaire", params={"profession": "10"}, headers=HTML)
    names = result_names(first)
    assert len(names) == 20
    next_link = re.search(r'<a href="(/annuaire\?[^"]*page=[^"]+)" rel="next"', first.text)
    assert next_link is not None
    assert ">Suivant</a>" in first.text
    second = physician.get(html.unescape(next_link.group(1)), headers=HTML)
    assert second.status_code == 200
    more = result_names(second)
    assert more and not set(more) & set(names)
    assert "Premiers résultats" in second.text
    broken = physician.get("/annuaire", params={"profession": "10", "page": "xx"}, headers=HTML)
    assert broken.status_code == 422
    assert "Cette recherche ne peut pas aboutir" in text_of(broken)


def test_searching_structures(physician: TestClient, directory_site: DirectorySite) -> None:
    page = physician.get("/annuaire", params={"kind": "structures", "q": "meneur"}, headers=HTML)
    assert result_names(page) == ["CABINET QUÉMÉNEUR"]
    assert "1 structure trouvée" in page.text
    assert 'name="profession"' not in page.text  # filters on professionals only
    chu = physician.get(
        "/annuaire", params={"kind": "structures", "q": directory_site.chu_site}, headers=HTML
    )
    assert result_names(chu) == []  # a name search, not a number search


def test_practitioner_page(physician: TestClient, directory_site: DirectorySite) -> None:
    practitioner_id = directory_site.practitioner_id("10000000003")
    page = physician.get(f"/annuaire/professionnels/{practitioner_id}", headers=HTML)
    assert page.status_code == 200
    text = text_of(page)
    assert "<h1>LE GALL Anaïs</h1>" in text
    assert "<dt>RPPS</dt><dd><code>10000000003</code></dd>" in text
    assert "<code>810000000003</code>" in text
    assert "En exercice" in text
    current, _, history = text.partition("Activités passées")
    assert "CABINET LE GALL" in current
    assert "Depuis le " in current
    assert '<a href="tel:+33549000000">05 49 00 00 00</a>' in current
    assert "12 R DES CARMES" in current or "12 Rue DES CARMES" in current
    # The activity the second extract no longer lists is history, with its dates.
    assert "Châtellerault" in history
    assert re.search(r"Du \d+ \w+ \d{4} au \d+ \w+ \d{4}", history)
    structure = re.search(r'<a href="(/annuaire/structures/[0-9a-f-]+)">CABINET LE GALL', text)
    assert structure is not None
    practice = physician.get(structure.group(1), headers=HTML)
    assert practice.status_code == 200
    assert "<h1>CABINET LE GALL</h1>" in practice.text
    assert f'href="/annuaire/professionnels/{practitioner_id}">LE GALL Anaïs</a>' in text_of(
        practice
    )


def test_organization_page_lists_its_professionals(
    physician: TestClient, directory_site: DirectorySite
) -> None:
    found = physician.get("/annuaire", params={"kind": "structures", "q": "lefevre"}, headers=HTML)
    link = re.search(
        r'<a href="(/annuaire/structures/[0-9a-f-]+)">CABINET LEFÈVRE</a>', text_of(found)
    )
    assert link is not None
    page = physician.get(link.group(1), headers=HTML)
    text = text_of(page)
    assert "<h1>CABINET LEFÈVRE</h1>" in text
    assert "Professionnels qui y exercent" in text
    assert "LEFÈVRE Marie" in text
    assert "Poitiers" in text
    assert physician.get(f"{link.group(1)}?page=nonsense", headers=HTML).status_code == 400


def test_a_practice_attached_to_a_site_is_shown_as_the_site(
    physician: TestClient, directory_site: DirectorySite
) -> None:
    practitioner_id = directory_site.practitioner_id("10000000008")
    page = text_of(physician.get(f"/annuaire/professionnels/{practitioner_id}", headers=HTML))
    site = re.search(r'<dt>Structure</dt>\s*<dd><a href="(/annuaire/structures/[0-9a-f-]+)">', page)
    assert site is not None
    assert "CABINET VASSEUR" not in page
    chu = text_of(physician.get(site.group(1), headers=HTML))
    assert f"<code>{directory_site.chu_site}</code>" in chu
    assert "Entité juridique" in chu
    assert f'href="/annuaire/professionnels/{practitioner_id}">VASSEUR Inès</a>' in chu
    assert "CABINET VASSEUR" in chu  # the practice through which she works there
    found = physician.get("/annuaire", params={"q": "vasseur"}, headers=HTML)
    assert result_names(found) == ["VASSEUR Inès"]
    assert f'href="{site.group(1)}"' in results_of(found)


def test_pages_in_english(directory_site: DirectorySite) -> None:
    with signed_in(directory_site, Profile.city_physician) as client:
        client.cookies.set("lang", "en")
        page = client.get("/annuaire", params={"q": "quemen", "profession": "60"}, headers=HTML)
        assert '<html lang="en">' in page.text
        assert "<h1>Directory of the territory</h1>" in page.text
        assert "1 professional found" in page.text
        assert "All professions" in page.text
        practitioner_id = directory_site.practitioner_id("10000000003")
        person = client.get(f"/annuaire/professionnels/{practitioner_id}", headers=HTML)
        assert "Current activities" in person.text
        assert "Past activities" in person.text
        assert re.search(r"From \w+ \d+, \d{4} to \w+ \d+, \d{4}", person.text)


def test_patients_and_strangers_do_not_see_the_directory(directory_site: DirectorySite) -> None:
    practitioner_id = directory_site.practitioner_id("10000000001")
    anonymous = directory_site.client()
    to_sign_in = anonymous.get("/annuaire?q=lefevre", headers=HTML)
    assert to_sign_in.url.path == "/login"
    with signed_in(directory_site, Profile.patient) as patient:
        home = patient.get("/", headers=HTML)
        assert 'href="/annuaire"' not in home.text
        for path in (
            "/annuaire",
            "/annuaire?q=lefevre",
            f"/annuaire/professionnels/{practitioner_id}",
            "/admin/annuaire",
        ):
            refused = patient.get(path, headers=HTML)
            assert refused.status_code == 404, path
            assert "Page introuvable" in refused.text
            assert "LEFÈVRE" not in refused.text


def test_unknown_or_malformed_ids_are_not_found(physician: TestClient) -> None:
    for path in (
        f"/annuaire/professionnels/{uuid.uuid4()}",
        "/annuaire/professionnels/not-an-id",
        f"/annuaire/structures/{uuid.uuid4()}",
        "/annuaire/structures/123",
        f"/admin/annuaire/imports/{uuid.uuid4()}",
    ):
        page = physician.get(path, headers=HTML)
        assert page.status_code == 404, path
        assert "Page introuvable" in page.text


def test_home_tile_and_menu_lead_to_the_directory(physician: TestClient) -> None:
    home = physician.get("/", headers=HTML)
    assert '<h2><a href="/annuaire">Annuaire</a></h2>' in home.text
    assert '<li><a href="/annuaire">Annuaire</a></li>' in home.text
    assert "/admin/annuaire" not in home.text


def test_administrators_read_the_import_history(directory_site: DirectorySite) -> None:
    with signed_in(directory_site, Profile.territory_admin, "/admin/annuaire") as admin:
        page = admin.get("/admin/annuaire", headers=HTML)
        assert page.status_code == 200
        text = text_of(page)
        assert "<h1>Imports de l'annuaire</h1>" in text
        assert "3 imports" in text
        for file_name in ("finess.csv", "rpps-1.txt", "rpps-2.txt"):
            assert file_name in text
        assert '<svg viewBox="0 0 640 84" role="img"' in page.text
        assert 'class="bar bar-rejected"' in page.text
        assert "style=" not in page.text  # the strict CSP forbids inline style
        assert 'aria-current="page">Imports de l\'annuaire</a>' in text
        report = re.search(
            r'<a href="(/admin/annuaire/imports/[0-9a-f-]+)">' + directory_site.rpps_file,
            page.text,
        )
        assert report is not None
        detail = admin.get(report.group(1), headers=HTML)
        assert detail.status_code == 200
        body = text_of(detail)
        assert "<h1>Rapport d'import</h1>" in body
        assert "Terminé" in body
        assert "Lignes rejetées" in body
        rows = re.findall(r'<tr><td class="number">(\d+)</td><td>([^<]+)</td></tr>', body)
        assert [int(line) for line, _ in rows] == directory_site.rejected_lines
        reasons = [reason for _, reason in rows]
        assert any("malformed RPPS national id" in reason for reason in reasons)
        assert any("columns instead of 52" in reason for reason in reasons)
        assert not any(reason.startswith("line ") for reason in reasons)
