"""The identity-vigilance console through HTTP: the queue, a review side by side with its
score explained, linking and not-a-duplicate, unmerging and merging persons, status and
INS, search, the dashboard, who may see it (and the audit of reads and denials), English.

Identities go through the real matcher (`tests.identity.factories`), each test with family
names of its own, in the session's shared database.
"""

from __future__ import annotations

import hashlib
import html
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

import httpx
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from partage.audit.models import AuditEvent
from partage.db import transaction
from partage.identity.ins import make_nir
from partage.identity.models import Link, LinkMethod, LocalIdentity, Review
from partage.identity.traits import IdentityTraits, Sex
from partage.platform import Platform
from partage.security.models import Establishment, Profile
from partage.web.identity_review_views import open_reviews
from tests.conftest import MadeAccount
from tests.identity.factories import receive, unique_family
from tests.web.helpers import HTML, csrf_of, sign_in

MakeAccount = Callable[..., MadeAccount]
MakeEstablishment = Callable[..., Establishment]
HTMX = {**HTML, "HX-Request": "true"}
CONSOLE = "/identitovigilance"


@dataclass
class Pair:
    """Two identities of two establishments the matcher put in the review queue."""

    family: str
    traits: IdentityTraits
    second_born: date
    review_id: uuid.UUID
    first_id: uuid.UUID  # of the CHU
    second_id: uuid.UUID  # of the CH

    @property
    def first_born(self) -> date:
        assert self.traits.birth_date is not None
        return self.traits.birth_date

    @property
    def given(self) -> str:
        return self.traits.given_names[0]

    @property
    def url(self) -> str:
        return f"{CONSOLE}/doublons/{self.review_id}"


GIVEN_NAMES = ("Ombeline", "Quitterie", "Mahaut", "Isaure", "Perrine", "Solène", "Albane")


def traits(family: str, **overrides: Any) -> IdentityTraits:
    """A woman of that family; her given names, birth date, address and phone derive from
    the name, so that no two tests' identities share a blocking key."""
    seed = int(hashlib.sha256(family.encode()).hexdigest(), 16)
    values: dict[str, Any] = {
        "birth_family_name": family,
        "given_names": (GIVEN_NAMES[seed % 7], "Louise"),
        "sex": Sex.female,
        "birth_date": date(1930 + seed % 70, 1 + seed // 70 % 9, 10 + seed // 630 % 18),
        "birth_place_code": "86194",
        "address": f"{seed % 97 + 1} rue de la Cathédrale",
        "postal_code": "86000",
        "city": "Poitiers",
        "phone": f"06{seed % 10**8:08d}",
    }
    return IdentityTraits(**{**values, **overrides})


def make_pair(platform: Platform, make_establishment: MakeEstablishment) -> Pair:
    """The same names and birth place; the birth day, the sex, the house number and the phone
    differ: alike, but a differing sex is never linked without a person looking."""
    chu = make_establishment(name="CHU de Poitiers")
    ch = make_establishment(name="CH Nord-Vienne")
    family = unique_family()
    base = traits(family)
    assert base.birth_date is not None
    born = base.birth_date.replace(day=base.birth_date.day + 1)
    first = receive(platform, chu, f"P-{family}", base)
    second = receive(
        platform,
        ch,
        f"N-{family}",
        traits(family, birth_date=born, sex=Sex.male, address=f"2{base.address}", phone=""),
    )
    ids = (first.identity.id, second.identity.id)
    with transaction(platform.read_sessions) as session:
        review = session.scalars(
            select(Review).where(
                Review.first_id.in_(ids), Review.second_id.in_(ids), Review.status == "open"
            )
        ).one()
    return Pair(family, base, born, review.id, *ids)


def person_of(platform: Platform, identity_id: uuid.UUID) -> uuid.UUID:
    with transaction(platform.read_sessions) as session:
        identity = session.get(LocalIdentity, identity_id)
        assert identity is not None
        return identity.person_id


def identity_row(platform: Platform, identity_id: uuid.UUID) -> LocalIdentity:
    with transaction(platform.read_sessions) as session:
        identity = session.get(LocalIdentity, identity_id)
        assert identity is not None
        return identity


def review_status(platform: Platform, review_id: uuid.UUID) -> str:
    with transaction(platform.read_sessions) as session:
        review = session.get(Review, review_id)
        assert review is not None
        return str(review.status)


def text_of(response: httpx.Response) -> str:
    return html.unescape(response.text)


def officer(client: TestClient, make_account: MakeAccount, path: str = CONSOLE) -> str:
    """Sign in as an identity-vigilance officer; the page's CSRF token."""
    made = make_account(Profile.identity_vigilance)
    page = sign_in(client, made.login, made.password, made.totp_secret, path=path)
    return csrf_of(page.text)


def comparison_rows(page: str) -> dict[str, tuple[str, str, str]]:
    """Trait -> (identity 1, identity 2, comparison) as the review's table shows them."""
    table = re.search(r'<table class="compare">.*?</table>', page, re.S)
    assert table is not None
    rows = {}
    for row in re.findall(r"<tr>(.*?)</tr>", table.group(0), re.S):
        header = re.search(r'<th scope="row">(.*?)</th>', row, re.S)
        cells = re.findall(r"<td>(.*?)</td>", row, re.S)
        if header and len(cells) == 3:
            label = re.sub(r"<[^>]+>|\s*\(trait strict\)", "", header.group(1)).strip()
            rows[label] = (cells[0].strip(), cells[1].strip(), cells[2].strip())
    return rows


def audit_rows(platform: Platform, action: str) -> list[AuditEvent]:
    with transaction(platform.read_sessions) as session:
        return list(
            session.scalars(
                select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.seq)
            )
        )


# --- the queue and a review ------------------------------------------------------------------


def test_the_queue_lists_the_pair_and_the_review_shows_the_differences(
    client: TestClient,
    platform: Platform,
    make_account: MakeAccount,
    make_establishment: MakeEstablishment,
) -> None:
    pair = make_pair(platform, make_establishment)
    officer(client, make_account, f"{CONSOLE}/doublons")
    queue = client.get(f"{CONSOLE}/doublons", headers=HTML)
    assert queue.status_code == 200
    text = text_of(queue)
    assert "<h1>Doublons potentiels</h1>" in text
    assert re.search(r"\d+ paires? d'identités? à examiner", text)
    assert f'href="{pair.url}"' in queue.text
    assert 'aria-current="page">Score le plus élevé d\'abord</a>' in text
    oldest = client.get(f"{CONSOLE}/doublons?ordre=anciennete", headers=HTML)
    assert f'href="{pair.url}"' in oldest.text
    assert 'aria-current="page">Les plus anciens d\'abord</a>' in text_of(oldest)

    page = client.get(pair.url, headers=HTML)
    assert page.status_code == 200
    body = text_of(page)
    assert '<html lang="fr">' in page.text
    assert "<h1>Doublon potentiel</h1>" in body
    assert "style=" not in page.text  # the strict CSP forbids inline style
    rows = comparison_rows(body)
    # Differences are marked in words, not by colour alone, and their values highlighted.
    born = rows["Date de naissance"]
    assert "Différent" in born[2]
    second_born = pair.second_born.strftime("%d/%m/%Y")
    first_born = pair.first_born.strftime("%d/%m/%Y")
    assert {born[0], born[1]} == {f"<mark>{first_born}</mark>", f"<mark>{second_born}</mark>"}
    assert "Différent" in rows["Adresse"][2]
    assert "D'un seul côté" in rows["Téléphone"][2]
    assert rows["Nom de naissance"][2] == "Identique"
    assert pair.family in rows["Nom de naissance"][0]
    assert set(rows["Sexe"][:2]) == {"<mark>Féminin</mark>", "<mark>Masculin</mark>"}
    assert "Différent" in rows["Sexe"][2]
    assert {rows["Établissement"][0], rows["Établissement"][1]} == {
        "CHU de Poitiers",
        "CH Nord-Vienne",
    }
    assert f"P-{pair.family}</a>" in rows["IPP"][0] + rows["IPP"][1]
    assert rows["Personne"][2] == "Deux personnes"
    assert "identités : 1</a>" in rows["Personne"][0]
    assert "3 traits diffèrent" in body
    # The score explained: each trait's level and weight, as a chart and as a table.
    assert "Pourquoi ce score" in body
    assert "un chiffre ou une partie diffère" in body or "différent" in body
    assert "Probabilité qu'il s'agisse de la même personne" in body
    assert "Seuils" in body
    assert '<svg viewBox="0 0 640 ' in page.text
    assert 'aria-labelledby="weights-title weights-desc"' in page.text
    assert "Concordance de chaque trait et son poids" in body
    # The two decisions, each with its reason, CSRF-protected, htmx-enhanced.
    assert f'action="{pair.url}/rattacher"' in page.text
    assert f'hx-post="{pair.url}/rattacher"' in page.text
    assert f'action="{pair.url}/pas-un-doublon"' in page.text
    assert '<label for="link-reason">Motif du rattachement</label>' in body
    assert "Même personne (rattacher)" in body
    assert "Pas un doublon" in body
    assert page.text.count('name="csrf_token"') >= 3  # sign-out, link, not a duplicate


def test_linking_a_review_makes_one_person(
    client: TestClient,
    platform: Platform,
    make_account: MakeAccount,
    make_establishment: MakeEstablishment,
) -> None:
    pair = make_pair(platform, make_establishment)
    token = officer(client, make_account, pair.url)
    done = client.post(
        f"{pair.url}/rattacher",
        data={"csrf_token": token, "reason": "Même patiente, date inversée à l'accueil"},
        headers=HTML,
    )
    assert done.status_code == 200
    assert done.url.path == pair.url
    body = text_of(done)
    assert "Rattachement fait : les deux identités appartiennent désormais" in body
    assert "Décision prise" in body
    assert "Même personne (rattacher)" not in body  # no decision left to take
    assert "Même personne" in comparison_rows(body)["Personne"][2]
    assert person_of(platform, pair.first_id) == person_of(platform, pair.second_id)
    assert review_status(platform, pair.review_id) == "linked"
    with transaction(platform.read_sessions) as session:
        links = session.scalars(
            select(Link).where(
                Link.local_identity_id.in_((pair.first_id, pair.second_id)),
                Link.method == LinkMethod.manual,
            )
        ).all()
        assert [link.reason for link in links] == ["Même patiente, date inversée à l'accueil"]
    # Done twice (another tab): a readable refusal, nothing changes.
    again = client.post(
        f"{pair.url}/rattacher", data={"csrf_token": token, "reason": "encore"}, headers=HTML
    )
    assert again.status_code == 422
    assert "Ce doublon potentiel a déjà été traité" in text_of(again)


def test_not_a_duplicate_is_recorded(
    client: TestClient,
    platform: Platform,
    make_account: MakeAccount,
    make_establishment: MakeEstablishment,
) -> None:
    pair = make_pair(platform, make_establishment)
    token = officer(client, make_account, pair.url)
    done = client.post(
        f"{pair.url}/pas-un-doublon",
        data={"csrf_token": token, "reason": "Jumelles : pièces d'identité vérifiées"},
        headers=HTML,
    )
    assert done.status_code == 200
    assert "ce sont deux personnes différentes" in text_of(done)
    assert review_status(platform, pair.review_id) == "not_duplicate"
    assert person_of(platform, pair.first_id) != person_of(platform, pair.second_id)
    queue = client.get(f"{CONSOLE}/doublons", headers=HTML)
    assert f'href="{pair.url}"' not in queue.text


def test_a_missing_reason_is_refused_and_nothing_changes(
    client: TestClient,
    platform: Platform,
    make_account: MakeAccount,
    make_establishment: MakeEstablishment,
) -> None:
    pair = make_pair(platform, make_establishment)
    token = officer(client, make_account, pair.url)
    for action in ("rattacher", "pas-un-doublon"):
        refused = client.post(
            f"{pair.url}/{action}", data={"csrf_token": token, "reason": "   "}, headers=HTML
        )
        assert refused.status_code == 422
        body = text_of(refused)
        assert "Indiquez le motif : il est obligatoire" in body
        assert 'role="alert"' in refused.text
        assert 'aria-invalid="true"' in refused.text
        assert review_status(platform, pair.review_id) == "open"
    assert person_of(platform, pair.first_id) != person_of(platform, pair.second_id)
    # The same for the person's and the identity's actions.
    person = person_of(platform, pair.first_id)
    merge = client.post(
        f"{CONSOLE}/personnes/{person}/fusionner",
        data={"csrf_token": token, "other": str(person_of(platform, pair.second_id))},
        headers=HTML,
    )
    assert merge.status_code == 422
    assert "Indiquez le motif" in text_of(merge)
    status = client.post(
        f"{CONSOLE}/identites/{pair.first_id}/statut",
        data={"csrf_token": token, "status": "VALI", "reason": ""},
        headers=HTML,
    )
    assert status.status_code == 422
    assert "Indiquez le motif" in text_of(status)
    assert person_of(platform, pair.first_id) != person_of(platform, pair.second_id)
    assert identity_row(platform, pair.first_id).status == "PROV"


def test_a_form_without_its_token_is_refused(
    client: TestClient,
    platform: Platform,
    make_account: MakeAccount,
    make_establishment: MakeEstablishment,
) -> None:
    pair = make_pair(platform, make_establishment)
    officer(client, make_account, pair.url)
    refused = client.post(f"{pair.url}/rattacher", data={"reason": "sans jeton"}, headers=HTML)
    assert refused.status_code == 403
    assert review_status(platform, pair.review_id) == "open"


def test_with_htmx_the_page_content_is_swapped_in_place(
    client: TestClient,
    platform: Platform,
    make_account: MakeAccount,
    make_establishment: MakeEstablishment,
) -> None:
    pair = make_pair(platform, make_establishment)
    token = officer(client, make_account, pair.url)
    refused = client.post(
        f"{pair.url}/rattacher", data={"csrf_token": token, "reason": ""}, headers=HTMX
    )
    # htmx swaps a 200 only: the refusal is said in the content.
    assert refused.status_code == 200
    assert refused.text.startswith('\n<div id="console-page">') or refused.text.lstrip().startswith(
        '<div id="console-page">'
    )
    assert "<html" not in refused.text
    assert "Indiquez le motif" in text_of(refused)
    done = client.post(
        f"{pair.url}/rattacher", data={"csrf_token": token, "reason": "Même patiente"}, headers=HTMX
    )
    assert done.status_code == 200
    assert "<html" not in done.text
    assert "Rattachement fait" in text_of(done)
    assert review_status(platform, pair.review_id) == "linked"


def test_the_queue_pages_without_losing_or_repeating_a_pair(
    platform: Platform, make_establishment: MakeEstablishment
) -> None:
    pairs = {make_pair(platform, make_establishment).review_id for _ in range(2)}
    for oldest in (False, True):
        seen: list[uuid.UUID] = []
        keys: list[object] = []
        after = None
        with transaction(platform.read_sessions) as session:
            while True:
                page = open_reviews(session, oldest=oldest, after=after, locale="fr", size=1)
                seen += [row.id for row in page.rows]
                for row in page.rows:
                    review = session.get(Review, row.id)
                    assert review is not None
                    keys.append(review.created_at if oldest else -review.score)
                if page.next_token is None:
                    break
                after = page.next_token
        assert len(seen) == len(set(seen)) == page.total
        assert pairs <= set(seen)
        assert keys == sorted(keys)  # type: ignore[type-var]


# --- persons: unmerge and merge ---------------------------------------------------------------


def test_unmerging_restores_the_persons(
    client: TestClient,
    platform: Platform,
    make_account: MakeAccount,
    make_establishment: MakeEstablishment,
) -> None:
    pair = make_pair(platform, make_establishment)
    before = (person_of(platform, pair.first_id), person_of(platform, pair.second_id))
    token = officer(client, make_account, pair.url)
    client.post(f"{pair.url}/rattacher", data={"csrf_token": token, "reason": "Même patiente"})
    merged = person_of(platform, pair.first_id)
    assert merged == person_of(platform, pair.second_id)
    page = client.get(f"{CONSOLE}/personnes/{merged}", headers=HTML)
    assert page.status_code == 200
    body = text_of(page)
    assert "<h1>Personne territoriale</h1>" in body
    assert "2 identités" in body
    assert "Défaire le rattachement (dé-fusion)" in body
    assert "Historique des rattachements" in body
    assert "Manuel" in body  # the method of the link just made
    assert "Même patiente" in body  # its reason
    assert "Personnes fusionnées" in body  # the event
    moved = pair.second_id if merged == before[0] else pair.first_id

    refused = client.post(
        f"{CONSOLE}/personnes/{merged}/defusionner",
        data={"csrf_token": token, "identity": str(moved), "reason": ""},
        headers=HTML,
    )
    assert refused.status_code == 422
    assert "Indiquez le motif" in text_of(refused)
    assert "<details open>" in refused.text  # the form that failed stays open
    assert person_of(platform, moved) == merged

    done = client.post(
        f"{CONSOLE}/personnes/{merged}/defusionner",
        data={"csrf_token": token, "identity": str(moved), "reason": "Erreur de rattachement"},
        headers=HTML,
    )
    assert done.status_code == 200
    assert "Le rattachement est défait" in text_of(done)
    # Each identity is back in the person it had before the link.
    assert (person_of(platform, pair.first_id), person_of(platform, pair.second_id)) == before
    restored = text_of(client.get(f"{CONSOLE}/personnes/{person_of(platform, moved)}"))
    assert "Rattachement défait (dé-fusion)" in restored
    assert "Erreur de rattachement" in restored
    # Undone once: the identity is alone now, and no longer here.
    stale = client.post(
        f"{CONSOLE}/personnes/{merged}/defusionner",
        data={"csrf_token": token, "identity": str(moved), "reason": "encore"},
        headers=HTML,
    )
    assert stale.status_code == 422
    assert "Cette identité n'appartient plus à cette personne" in text_of(stale)


def test_merging_two_persons(
    client: TestClient,
    platform: Platform,
    make_account: MakeAccount,
    make_establishment: MakeEstablishment,
) -> None:
    pair = make_pair(platform, make_establishment)
    kept, absorbed = person_of(platform, pair.first_id), person_of(platform, pair.second_id)
    token = officer(client, make_account, f"{CONSOLE}/personnes/{kept}")
    wrong = client.post(
        f"{CONSOLE}/personnes/{kept}/fusionner",
        data={"csrf_token": token, "other": "not-an-id", "reason": "Même patiente"},
        headers=HTML,
    )
    assert wrong.status_code == 422
    assert "Saisissez l'identifiant de l'autre personne" in text_of(wrong)
    assert 'value="not-an-id"' in wrong.text  # what was typed stays
    itself = client.post(
        f"{CONSOLE}/personnes/{kept}/fusionner",
        data={"csrf_token": token, "other": str(kept), "reason": "Même patiente"},
        headers=HTML,
    )
    assert "Une personne ne peut pas être fusionnée avec elle-même" in text_of(itself)
    done = client.post(
        f"{CONSOLE}/personnes/{kept}/fusionner",
        data={"csrf_token": token, "other": str(absorbed), "reason": "Même patiente (carte)"},
        headers=HTML,
    )
    assert done.status_code == 200
    assert done.url.path == f"{CONSOLE}/personnes/{kept}"
    assert "Les personnes ont été fusionnées" in text_of(done)
    assert person_of(platform, pair.second_id) == kept
    gone = text_of(client.get(f"{CONSOLE}/personnes/{absorbed}", headers=HTML))
    assert "Cette personne a été fusionnée dans une autre" in gone
    assert f'href="{CONSOLE}/personnes/{kept}"' in gone
    assert "Fusionner une autre personne dans celle-ci" not in gone


# --- a local identity: status and INS -------------------------------------------------------


def test_changing_the_status_and_attaching_the_ins(
    client: TestClient,
    platform: Platform,
    make_account: MakeAccount,
    make_establishment: MakeEstablishment,
) -> None:
    establishment = make_establishment(name="Clinique du Parc")
    family = unique_family()
    own = traits(family)
    received = receive(platform, establishment, f"C-{family}", own)
    identity_id = received.identity.id
    url = f"{CONSOLE}/identites/{identity_id}"
    token = officer(client, make_account, url)
    page = client.get(url, headers=HTML)
    body = text_of(page)
    assert f"<h1>{family} {own.given_names[0]} Louise</h1>" in body
    assert "Identité provisoire" in body
    assert '<label for="attribute-doubtful">Identité douteuse</label>' in body
    assert '<label for="ins-verified">Identité vérifiée sur pièce d\'identité</label>' in body
    assert "Identité reçue" in body  # its history

    needs_ins = client.post(
        f"{url}/statut",
        data={"csrf_token": token, "status": "QUAL", "reason": "Pièce vue"},
        headers=HTML,
    )
    assert needs_ins.status_code == 422
    assert "Le statut QUAL exige un INS" in text_of(needs_ins)

    changed = client.post(
        f"{url}/statut",
        data={
            "csrf_token": token,
            "status": "VALI",
            "attributes": ["homonym"],
            "reason": "Carte d'identité présentée",
        },
        headers=HTML,
    )
    assert changed.status_code == 200
    assert "Le statut a été modifié" in text_of(changed)
    row = identity_row(platform, identity_id)
    assert (row.status, row.homonym, row.doubtful) == ("VALI", True, False)
    assert "Statut modifié" in text_of(changed)
    assert "Carte d'identité présentée" in text_of(changed)

    assert own.birth_date is not None
    ins = make_nir(sex=Sex.female, birth_date=own.birth_date, birth_place_code="86194", order=7)
    bad = ins[:-2] + f"{(int(ins[-2:]) % 97) + 1:02d}"
    refused = client.post(
        f"{url}/ins",
        data={"csrf_token": token, "ins": bad, "verified": "on", "reason": "INSi"},
        headers=HTML,
    )
    assert refused.status_code == 422
    assert "ne correspond pas au numéro" in text_of(refused)
    assert f'value="{bad}"' in refused.text
    assert identity_row(platform, identity_id).ins == ""

    spaced = " ".join((ins[0], ins[1:3], ins[3:5], ins[5:7], ins[7:10], ins[10:13], ins[13:]))
    attached = client.post(
        f"{url}/ins",
        data={"csrf_token": token, "ins": spaced, "verified": "on", "reason": "Appel INSi"},
        headers=HTML,
    )
    assert attached.status_code == 200
    assert "L'INS a été rattaché" in text_of(attached)
    row = identity_row(platform, identity_id)
    assert (row.ins, row.status) == (ins, "QUAL")
    assert "INS rattaché" in text_of(attached)
    assert spaced in text_of(attached)
    found = client.get(f"{CONSOLE}/recherche", params={"ins": spaced}, headers=HTML)
    assert "1 identité trouvée" in text_of(found)
    assert f'href="{url}"' in found.text


# --- search -----------------------------------------------------------------------------------


def test_search_by_name_birth_date_ipp_and_ins(
    client: TestClient,
    platform: Platform,
    make_account: MakeAccount,
    make_establishment: MakeEstablishment,
) -> None:
    pair = make_pair(platform, make_establishment)
    officer(client, make_account, f"{CONSOLE}/recherche")
    empty = client.get(f"{CONSOLE}/recherche", headers=HTML)
    assert "Saisissez un nom, un prénom" in text_of(empty)
    prefix = pair.family[:6].lower()
    found = client.get(f"{CONSOLE}/recherche", params={"nom": prefix}, headers=HTML)
    text = text_of(found)
    assert "2 identités trouvées" in text
    assert f'href="{CONSOLE}/identites/{pair.first_id}"' in found.text
    assert f'href="{CONSOLE}/personnes/{person_of(platform, pair.first_id)}"' in found.text
    narrowed = client.get(
        f"{CONSOLE}/recherche",
        params={
            "nom": prefix,
            "prenom": "louise",
            "naissance": pair.second_born.strftime("%d/%m/%Y"),
        },
        headers=HTML,
    )
    assert "1 identité trouvée" in text_of(narrowed)
    assert f'href="{CONSOLE}/identites/{pair.second_id}"' in narrowed.text
    by_ipp = client.get(f"{CONSOLE}/recherche", params={"ipp": f"P-{pair.family}"}, headers=HTML)
    assert f'href="{CONSOLE}/identites/{pair.first_id}"' in by_ipp.text
    assert "1 identité trouvée" in text_of(by_ipp)
    bad_date = client.get(f"{CONSOLE}/recherche", params={"naissance": "31/02/1968"}, headers=HTML)
    assert bad_date.status_code == 422
    assert "Saisissez la date de naissance sous la forme JJ/MM/AAAA" in text_of(bad_date)
    nobody = client.get(f"{CONSOLE}/recherche", params={"ins": "299999999999999"}, headers=HTML)
    assert "Aucune identité ne correspond" in text_of(nobody)


# --- the dashboard ------------------------------------------------------------------------------


def test_the_dashboard_counts_and_charts(
    client: TestClient,
    platform: Platform,
    make_account: MakeAccount,
    make_establishment: MakeEstablishment,
) -> None:
    pair = make_pair(platform, make_establishment)
    token = officer(client, make_account, f"{CONSOLE}/doublons")
    client.post(f"{pair.url}/rattacher", data={"csrf_token": token, "reason": "Même patiente"})
    page = client.get(CONSOLE, headers=HTML)
    assert page.status_code == 200
    body = text_of(page)
    assert "<h1>Identitovigilance</h1>" in body
    assert "Doublons potentiels à examiner" in body
    assert "Rattachements par jour, 30 derniers jours" in body
    assert "Identités par statut" in body
    assert "Rattachements défaits (dé-fusions)" in body
    assert 'role="img" aria-labelledby="links-chart-title links-chart-desc"' in page.text
    assert 'role="img" aria-labelledby="status-chart-title status-chart-desc"' in page.text
    assert "style=" not in page.text
    # The text alternative: today's row counts the manual link made above (two identities
    # moved at most, at least one).
    table = re.search(
        r"<caption>Rattachements par jour et par méthode</caption>(.*?)</table>", body, re.S
    )
    assert table is not None
    today = re.search(r"<tr>\s*<th scope=\"row\">[^<]+</th>(.*?)</tr>", table.group(1), re.S)
    assert today is not None
    counts = [int(c) for c in re.findall(r'<td class="number">(\d+)</td>', today.group(1))]
    automatic, ins, manual, a40, total = counts
    assert manual >= 1
    assert total == automatic + ins + manual + a40
    statuses = re.findall(
        r'<tr><th scope="row">(\w+) · [^<]+</th><td class="number">(\d+)</td>', body
    )
    assert [code for code, _ in statuses] == ["PROV", "RECUP", "VALI", "QUAL"]
    assert int(dict(statuses)["PROV"]) >= 2


# --- who may see it, and the audit trail ---------------------------------------------------------


def test_reads_are_audited_per_person_with_ids_only(
    client: TestClient,
    platform: Platform,
    make_account: MakeAccount,
    make_establishment: MakeEstablishment,
) -> None:
    pair = make_pair(platform, make_establishment)
    officer(client, make_account, pair.url)
    rows = [
        row
        for row in audit_rows(platform, "identity.review_viewed")
        if row.entity_id == str(pair.review_id)
    ]
    persons = {str(person_of(platform, pair.first_id)), str(person_of(platform, pair.second_id))}
    assert {row.person_id for row in rows} == persons
    assert all(row.basis == "identity_vigilance" for row in rows)
    assert all(row.actor_kind == "account" for row in rows)
    assert pair.family not in str([row.detail for row in rows])
    client.get(f"{CONSOLE}/recherche", params={"nom": pair.family}, headers=HTML)
    searched = audit_rows(platform, "identity.searched")[-2:]
    assert {row.person_id for row in searched} == persons
    assert all(row.detail["criteria"] == ["name"] for row in searched)
    assert pair.family not in str([row.detail for row in searched])


def test_other_profiles_get_not_found_and_the_denial_is_audited(
    client: TestClient,
    platform: Platform,
    make_account: MakeAccount,
    make_establishment: MakeEstablishment,
) -> None:
    pair = make_pair(platform, make_establishment)
    person = person_of(platform, pair.first_id)
    physician = make_account(Profile.hospital_physician)
    home = sign_in(client, physician.login, physician.password, physician.totp_secret)
    token = csrf_of(home.text)
    pages = (
        CONSOLE,
        f"{CONSOLE}/doublons",
        pair.url,
        f"{CONSOLE}/personnes/{person}",
        f"{CONSOLE}/identites/{pair.first_id}",
        f"{CONSOLE}/recherche?prenom=ombeline",
    )
    for path in pages:
        refused = client.get(path, headers=HTML)
        assert refused.status_code == 404, path
        assert "Page introuvable" in refused.text
        assert pair.family not in refused.text
    posts = (
        (f"{pair.url}/rattacher", {"reason": "x"}),
        (f"{pair.url}/pas-un-doublon", {"reason": "x"}),
        (f"{CONSOLE}/personnes/{person}/defusionner", {"identity": str(pair.first_id)}),
        (f"{CONSOLE}/personnes/{person}/fusionner", {"other": str(person)}),
        (f"{CONSOLE}/identites/{pair.first_id}/statut", {"status": "VALI"}),
        (f"{CONSOLE}/identites/{pair.first_id}/ins", {"ins": "1"}),
    )
    for path, data in posts:
        refused = client.post(path, data={"csrf_token": token, **data}, headers=HTML)
        assert refused.status_code == 404, path
    assert review_status(platform, pair.review_id) == "open"
    denied = [
        row
        for row in audit_rows(platform, "access.identity.read")
        if row.actor_id == str(physician.account.id)
    ]
    assert len(denied) == len(pages)
    assert all(row.outcome == "denied" for row in denied)
    assert str(pair.review_id) in {row.entity_id for row in denied}
    managed = [
        row
        for row in audit_rows(platform, "access.identity.manage")
        if row.actor_id == str(physician.account.id)
    ]
    assert len(managed) == len(posts)


def test_signed_out_visitors_are_sent_to_sign_in(client: TestClient) -> None:
    for path in (CONSOLE, f"{CONSOLE}/doublons", f"{CONSOLE}/recherche"):
        response = client.get(path, headers=HTML)
        assert response.url.path == "/login", path


def test_unknown_or_malformed_ids_are_not_found(
    client: TestClient, make_account: MakeAccount
) -> None:
    officer(client, make_account)
    for path in (
        f"{CONSOLE}/doublons/{uuid.uuid4()}",
        f"{CONSOLE}/doublons/nonsense",
        f"{CONSOLE}/personnes/{uuid.uuid4()}",
        f"{CONSOLE}/identites/123",
    ):
        page = client.get(path, headers=HTML)
        assert page.status_code == 404, path
        assert "Page introuvable" in page.text
    assert client.get(f"{CONSOLE}/doublons?apres=nonsense", headers=HTML).status_code == 400


def test_pages_in_english(
    client: TestClient,
    platform: Platform,
    make_account: MakeAccount,
    make_establishment: MakeEstablishment,
) -> None:
    pair = make_pair(platform, make_establishment)
    officer(client, make_account)
    client.cookies.set("lang", "en")
    board = client.get(CONSOLE, headers=HTML)
    assert '<html lang="en">' in board.text
    assert "<h1>Identity vigilance</h1>" in board.text
    assert "Links made per day, last 30 days" in board.text
    review = text_of(client.get(pair.url, headers=HTML))
    assert "<h1>Potential duplicate</h1>" in review
    assert "Same person (link)" in review
    assert f"<mark>{pair.first_born.isoformat()}</mark>" in review
    rows = comparison_rows(review.replace("(strict trait)", "(trait strict)"))
    assert "Different" in rows["Birth date"][2]
    queue = text_of(client.get(f"{CONSOLE}/doublons", headers=HTML))
    assert "Highest score first" in queue
    token = csrf_of(client.get(pair.url, headers=HTML).text)
    refused = client.post(f"{pair.url}/rattacher", data={"csrf_token": token}, headers=HTML)
    assert "Give the reason: it is required and kept in the history." in text_of(refused)


def test_the_menu_shows_identity_vigilance_to_officers_only(
    client: TestClient, app: FastAPI, make_account: MakeAccount
) -> None:
    menu_item = r'<li><a href="/identitovigilance"[^>]*>Identitovigilance</a></li>'
    officer(client, make_account, "/")
    assert re.search(menu_item, client.get("/", headers=HTML).text)
    with TestClient(app, base_url=str(client.base_url)) as other:
        physician = make_account(Profile.hospital_physician)
        home = sign_in(other, physician.login, physician.password, physician.totp_secret)
        assert not re.search(menu_item, home.text)
