"""The professional's view of a patient's record through HTTP: finding a patient, the
timeline (only what the access decision admits; filters, htmx, paging), the viewer (a
level-3 CDA rendered safely, PDF and its content route's headers, versions), adding a
document from the page, who gets "not found", and the audit rows of each read.

Documents are deposited with `deposit()` as an establishment's system would; identities go
through the real matcher, each test with family names of its own.
"""

from __future__ import annotations

import html
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from partage.audit.models import AuditEvent
from partage.db import transaction
from partage.documents.deposit import deposit
from partage.documents.models import DocumentEntry, RelationKind
from partage.documents.submission import (
    LOINC,
    MASQUE_PS,
    AuthorRef,
    Coding,
    NewDocument,
    PatientRef,
    Relation,
    Submission,
)
from partage.documents.synthetic import pdf
from partage.identity.models import LocalIdentity
from partage.platform import Platform
from partage.security.models import Establishment, EstablishmentKind, Profile
from partage.security.principal import Principal
from partage.web import record_views
from tests.conftest import MadeAccount
from tests.documents import cda_samples
from tests.identity.factories import receive, traits, unique_family
from tests.web.helpers import HTML, csrf_of, sign_in

MakeAccount = Callable[..., MadeAccount]
MakeEstablishment = Callable[..., Establishment]
HTMX = {**HTML, "HX-Request": "true"}


def system_of(establishment: Establishment) -> Principal:
    """The establishment's own system (as its FHIR client would be)."""
    return Principal(
        kind="client",
        label=f"DPI {establishment.code}",
        establishment_id=establishment.id,
        client_id=f"dpi-{establishment.code}",
    )


@dataclass
class Territory:
    platform: Platform
    chu: Establishment
    practice: Establishment  # a city practice that knows the patient too
    elsewhere: Establishment  # knows nothing of the patient
    person_id: uuid.UUID
    family: str
    ipp: str
    practice_ipp: str
    documents: dict[str, uuid.UUID] = field(default_factory=dict)

    def put(
        self,
        key: str,
        content: bytes,
        *,
        mime_type: str = "application/pdf",
        title: str | None = None,
        type_code: str = "11488-4",
        created: datetime | None = None,
        by: Establishment | None = None,
        visibility: frozenset[str] = frozenset(),
        replaces: str | None = None,
    ) -> uuid.UUID:
        result = deposit(
            self.platform.sessions,
            self.platform.repository,
            principal=system_of(by or self.chu),
            submission=Submission(
                unique_id=f"2.25.{uuid.uuid4().int}",
                source_id="1.2.250.1.999.1",
                patient=PatientRef(person_id=self.person_id),
                channel="mhd",
                documents=[
                    NewDocument(
                        unique_id=f"2.25.{uuid.uuid4().int}",
                        content=content,
                        mime_type=mime_type,
                        type=Coding(LOINC, type_code, "Compte rendu"),
                        title=title,
                        creation_time=created or datetime(2024, 3, 1, 10, tzinfo=UTC),
                        authors=[AuthorRef(label="Dr Hélène VIDAL")],
                        visibility=visibility,
                        relations=[Relation(RelationKind.replaces, self.documents[replaces])]
                        if replaces
                        else [],
                    )
                ],
            ),
        )
        self.documents[key] = result.documents[0].id
        return result.documents[0].id

    @property
    def record(self) -> str:
        return f"/dossier/{self.person_id}"

    def document(self, key: str) -> str:
        return f"{self.record}/documents/{self.documents[key]}"


@pytest.fixture
def territory(platform: Platform, make_establishment: MakeEstablishment) -> Territory:
    chu = make_establishment(name="CHU de test")
    practice = make_establishment(
        name="Maison de santé de test", kind=EstablishmentKind.city_practice
    )
    elsewhere = make_establishment(name="Cabinet éloigné", kind=EstablishmentKind.nursing_practice)
    family = unique_family()
    patient = traits(family)
    first = receive(platform, chu, f"C-{family}", patient)
    second = receive(platform, practice, f"M-{family}", patient)
    with transaction(platform.sessions) as session:
        # The same traits are one person; whatever the matcher says, the test needs it.
        row = session.get(LocalIdentity, second.identity.id)
        assert row is not None
        row.person_id = first.identity.person_id
    place = Territory(
        platform,
        chu,
        practice,
        elsewhere,
        first.identity.person_id,
        family,
        f"C-{family}",
        f"M-{family}",
    )
    place.put(
        "report", pdf(["Compte rendu opératoire"], seed=family), title="Compte rendu opératoire"
    )
    place.put(
        "letter",
        cda_samples.level3(),
        mime_type="text/xml",
        type_code="11490-0",
        created=datetime(2024, 3, 12, 13, tzinfo=UTC),
    )
    place.put(
        "masked",
        pdf(["Consultation de psychiatrie"], seed=family + "m"),
        title="Consultation de psychiatrie",
        visibility=frozenset({MASQUE_PS}),
    )
    place.put(
        "note",
        "Tension 12/8, à revoir dans un mois.".encode(),
        mime_type="text/plain",
        title="Note de suivi",
        type_code="11506-3",
        created=datetime(2023, 11, 5, 9, tzinfo=UTC),
        by=practice,
    )
    return place


def reader(
    client: TestClient,
    make_account: MakeAccount,
    establishment: Establishment,
    path: str,
    profile: Profile = Profile.city_physician,
) -> httpx.Response:
    made = make_account(profile, establishment=establishment)
    return sign_in(client, made.login, made.password, made.totp_secret, path=path)


def audit_rows(platform: Platform, action: str, person_id: uuid.UUID | None) -> list[AuditEvent]:
    with transaction(platform.read_sessions) as session:
        query = select(AuditEvent).where(AuditEvent.action == action)
        if person_id is not None:
            query = query.where(AuditEvent.person_id == str(person_id))
        return list(session.scalars(query.order_by(AuditEvent.seq)))


def text_of(response: httpx.Response) -> str:
    return html.unescape(response.text)


def listed(response: httpx.Response) -> str:
    """The timeline of a record page (not its filters' options)."""
    match = re.search(r'<section id="timeline".*?</section>', text_of(response), re.S)
    assert match is not None, response.text
    return match.group(0)


# --- the timeline ----------------------------------------------------------------------------


def test_timeline_shows_what_the_decision_admits(
    client: TestClient, territory: Territory, make_account: MakeAccount
) -> None:
    page = reader(client, make_account, territory.practice, territory.record)
    text = text_of(page)
    assert re.search(r"<h1>Dossier de [A-Z]+ ", text), text
    for title in ("Compte rendu opératoire", "Lettre de liaison de sortie", "Note de suivi"):
        assert title in text
    assert "Consultation de psychiatrie" not in text  # MASQUE_PS: hidden from professionals
    assert text.index("Lettre de liaison de sortie") < text.index("Compte rendu opératoire")
    assert text.index("Compte rendu opératoire") < text.index("Note de suivi")  # newest first
    assert "CHU de test" in text and "Maison de santé de test" in text
    assert "Dr Hélène VIDAL" in text
    assert f"M-{territory.family}" in text  # the reader's establishment's IPP
    assert "Ajouter un document" in text  # her practice holds an identity of the patient

    # The masked document is refused by its address too, as if it did not exist.
    masked = client.get(territory.document("masked"), headers=HTML)
    assert masked.status_code == 404

    listed = audit_rows(territory.platform, "document.search", territory.person_id)
    assert listed and listed[-1].basis == "care_establishment"
    assert str(territory.documents["masked"]) not in listed[-1].detail["documents"]
    assert str(territory.documents["report"]) in listed[-1].detail["documents"]
    refused = audit_rows(territory.platform, "document.read", territory.person_id)
    assert refused[-1].outcome == "denied"


def test_a_professional_without_an_identity_of_the_patient_gets_not_found(
    client: TestClient, territory: Territory, make_account: MakeAccount
) -> None:
    reader(client, make_account, territory.elsewhere, "/", profile=Profile.nurse)
    record = client.get(territory.record, headers=HTML)
    random_id = uuid.uuid4()
    unknown = client.get(f"/dossier/{random_id}", headers=HTML)
    assert record.status_code == unknown.status_code == 404
    # The same page, but for the address in the language links.
    assert text_of(record).replace(str(territory.person_id), "ID") == text_of(unknown).replace(
        str(random_id), "ID"
    )
    assert "Page introuvable" in text_of(record)
    document = client.get(territory.document("report"), headers=HTML)
    content = client.get(territory.document("report") + "/contenu", headers=HTML)
    assert document.status_code == content.status_code == 404
    assert "Compte rendu" not in document.text + content.text
    denied = audit_rows(territory.platform, "document.search", territory.person_id)
    assert denied[-1].outcome == "denied"
    assert audit_rows(territory.platform, "document.retrieve", territory.person_id)[-1].outcome == (
        "denied"
    )
    # Nor does the search lead there.
    found = client.get("/dossier", params={"ipp": territory.ipp}, headers=HTML)
    assert found.status_code == 200 and territory.record not in found.text


def test_other_profiles_do_not_have_these_pages(
    client: TestClient, territory: Territory, make_account: MakeAccount
) -> None:
    reader(client, make_account, territory.chu, "/", profile=Profile.identity_vigilance)
    assert client.get(territory.record, headers=HTML).status_code == 404
    assert client.get("/dossier", headers=HTML).status_code == 404


def test_filters_with_and_without_htmx_and_stable_pages(
    client: TestClient,
    territory: Territory,
    make_account: MakeAccount,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reader(client, make_account, territory.chu, "/", profile=Profile.hospital_physician)
    by_type = listed(client.get(territory.record, params={"type": "11490-0"}, headers=HTML))
    assert "Lettre de liaison de sortie" in by_type and "Compte rendu opératoire" not in by_type
    by_place = listed(
        client.get(
            territory.record, params={"etablissement": str(territory.practice.id)}, headers=HTML
        )
    )
    assert "Note de suivi" in by_place and "Compte rendu opératoire" not in by_place
    dated = listed(
        client.get(territory.record, params={"du": "2024-03-01", "au": "2024-03-01"}, headers=HTML)
    )
    assert "Compte rendu opératoire" in dated
    assert "Lettre de liaison" not in dated and "Note de suivi" not in dated
    wrong = client.get(territory.record, params={"du": "hier"}, headers=HTML)
    assert "Saisissez les dates au format JJ/MM/AAAA." in text_of(wrong)

    # htmx gets the list only, filtered the same way.
    fragment = client.get(territory.record, params={"type": "11490-0"}, headers=HTMX)
    assert fragment.status_code == 200
    assert fragment.text.lstrip().startswith('<section id="timeline"')
    assert "<html" not in fragment.text and "Lettre de liaison de sortie" in text_of(fragment)

    # Pages: two documents a page, a third deposited meanwhile does not shift the second page.
    monkeypatch.setattr(record_views, "PAGE_SIZE", 2)
    first = text_of(client.get(territory.record, headers=HTML))
    next_link = re.search(r'<a href="([^"]+)">Documents plus anciens</a>', first)
    assert next_link is not None
    territory.put(
        "newest", pdf(["Nouveau"], seed="n"), title="Tout nouveau", created=datetime.now(UTC)
    )
    second = text_of(client.get(html.unescape(next_link.group(1)), headers=HTML))
    assert "Note de suivi" in second and "Tout nouveau" not in second
    assert "Première page" in second


# --- the viewer -------------------------------------------------------------------------------


def test_viewer_renders_a_level_3_cda_safely(
    client: TestClient, territory: Territory, make_account: MakeAccount
) -> None:
    territory.put(
        "hostile", cda_samples.script_in_paragraph(), mime_type="text/xml", title="Hostile"
    )
    reader(client, make_account, territory.practice, "/")
    page = client.get(territory.document("letter"), headers=HTML)
    assert page.status_code == 200
    text = page.text
    assert '<section class="cda-section">' in text
    assert "Motif d&#39;hospitalisation" in text or "Motif d'hospitalisation" in text
    assert '<table class="cda-table">' in text and "<th>Analyse</th>" in text
    image = re.search(r'<img class="cda-media" src="([^"]+)"', text)
    assert image is not None and image.group(1).endswith("/pieces/IMG-1")
    assert "Télécharger" in text and "Version 1" in text
    served = client.get(image.group(1))
    assert served.status_code == 200 and served.headers["content-type"] == "image/png"
    assert served.headers["content-disposition"] == "inline"

    hostile = client.get(territory.document("hostile"), headers=HTML).text
    body = hostile.split('<div class="cda-view">', 1)[1]
    assert "<script" not in body and "<iframe" not in body
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in body  # shown as text
    read = audit_rows(territory.platform, "document.read", territory.person_id)
    assert read[-1].outcome == "success" and read[-1].entity_id == str(
        territory.documents["hostile"]
    )


def test_pdf_is_framed_from_a_sandboxed_content_route(
    client: TestClient, territory: Territory, make_account: MakeAccount
) -> None:
    reader(client, make_account, territory.chu, "/", profile=Profile.hospital_physician)
    page = text_of(client.get(territory.document("report"), headers=HTML))
    frame = re.search(r'<iframe class="document-frame" src="([^"]+)"', page)
    assert frame is not None
    content = client.get(frame.group(1))
    assert content.status_code == 200
    assert content.content.startswith(b"%PDF-")
    assert content.headers["content-type"] == "application/pdf"
    assert content.headers["content-disposition"] == "inline"
    assert content.headers["cache-control"] == "no-store"
    assert "nosniff" in content.headers["x-content-type-options"]
    policy = content.headers["content-security-policy"]
    assert policy.startswith("sandbox;") and "frame-ancestors 'self'" in policy
    downloaded = client.get(frame.group(1), params={"telecharger": "1"})
    assert downloaded.headers["content-disposition"].startswith("attachment; filename=")
    retrieved = audit_rows(territory.platform, "document.retrieve", territory.person_id)
    assert [r.detail["download"] for r in retrieved[-2:]] == [False, True]
    assert all(r.outcome == "success" and r.basis == "care_establishment" for r in retrieved[-2:])

    text = text_of(client.get(territory.document("note"), headers=HTML))
    assert '<pre class="document-text">Tension 12/8, à revoir dans un mois.</pre>' in text


def test_versions_and_status_badges(
    client: TestClient, territory: Territory, make_account: MakeAccount
) -> None:
    territory.put(
        "report-v2",
        pdf(["Compte rendu opératoire corrigé"], seed=territory.family + "2"),
        title="Compte rendu opératoire (corrigé)",
        replaces="report",
    )
    reader(client, make_account, territory.chu, "/", profile=Profile.hospital_physician)
    current = listed(client.get(territory.record, headers=HTML))
    assert "Compte rendu opératoire (corrigé)" in current
    assert "remplacé" not in current
    everything = listed(client.get(territory.record, params={"tout": "on"}, headers=HTML))
    assert '<span class="status status-warn">remplacé</span>' in everything

    page = text_of(client.get(territory.document("report-v2"), headers=HTML))
    assert '<strong aria-current="page">Version 2</strong>' in page
    assert f'<a href="{territory.document("report")}">Version 1</a>' in page
    old = text_of(client.get(territory.document("report"), headers=HTML))
    assert "remplacé" in old


# --- finding a patient ---------------------------------------------------------------------


def test_find_a_patient_of_ones_establishment(
    client: TestClient, territory: Territory, make_account: MakeAccount, platform: Platform
) -> None:
    reader(client, make_account, territory.practice, "/dossier")
    by_ipp = text_of(client.get("/dossier", params={"ipp": territory.practice_ipp}, headers=HTML))
    assert f'href="{territory.record}"' in by_ipp and "1 patient trouvé" in by_ipp
    # The CHU's IPP is not this practice's.
    other_ipp = text_of(client.get("/dossier", params={"ipp": territory.ipp}, headers=HTML))
    assert territory.record not in other_ipp
    born = traits(territory.family).birth_date
    assert born is not None
    by_name = text_of(
        client.get(
            "/dossier",
            params={"nom": territory.family.lower(), "naissance": born.strftime("%d/%m/%Y")},
            headers=HTML,
        )
    )
    assert territory.record in by_name
    name_only = client.get("/dossier", params={"nom": territory.family}, headers=HTML)
    assert name_only.status_code == 422
    assert "nom de famille et une date de naissance" in text_of(name_only)
    searched = audit_rows(platform, "record.search", territory.person_id)
    assert len(searched) == 2 and searched[-1].detail["criteria"] == ["name", "born"]


# --- adding a document ------------------------------------------------------------------------


def test_a_city_doctor_adds_a_document_to_the_record(
    client: TestClient, territory: Territory, make_account: MakeAccount
) -> None:
    page = reader(client, make_account, territory.practice, territory.record)
    token = csrf_of(page.text)
    action = f"{territory.record}/documents"
    added = client.post(
        action,
        data={
            "csrf_token": token,
            "type": "11488-4",
            "titre": "Consultation du jour",
            "date": "2024-05-02",
        },
        files={
            "fichier": ("cr.pdf", pdf(["Consultation du jour"], seed="portal"), "application/pdf")
        },
        headers=HTML,
    )
    assert added.status_code == 200 and added.url.params.get("ajoute") == "1"
    text = text_of(added)
    assert "Le document a été ajouté au dossier." in text
    assert "Consultation du jour" in text and "Compte rendu de consultation" in text
    deposited = audit_rows(territory.platform, "document.deposit", territory.person_id)
    assert deposited[-1].outcome == "success" and deposited[-1].detail["channel"] == "portal"

    # A CDA document takes its title from its header.
    cda = client.post(
        action,
        data={"csrf_token": token, "type": "11490-0", "titre": "", "date": ""},
        files={
            "fichier": (
                "lettre.xml",
                cda_samples.structured("<paragraph>Vu.</paragraph>", title="Lettre du cabinet"),
                "text/xml",
            )
        },
        headers=HTML,
    )
    assert "Lettre du cabinet" in text_of(cda)

    refused = client.post(
        action,
        data={"csrf_token": token, "type": "11488-4", "titre": "Image"},
        files={"fichier": ("x.bin", b"\x00\x01\x02binary", "application/octet-stream")},
        headers=HTML,
    )
    assert refused.status_code == 422
    assert "Le fichier doit être un PDF" in text_of(refused)
    broken = client.post(
        action,
        data={"csrf_token": token, "type": "11490-0"},
        files={"fichier": ("x.xml", cda_samples.not_cda(), "text/xml")},
        headers=HTML,
    )
    assert broken.status_code == 422
    assert "Le document n'a pas été ajouté : the CDA document is not valid" in text_of(broken)
    assert audit_rows(territory.platform, "document.deposit", territory.person_id)[-1].outcome == (
        "refused"
    )
    no_type = client.post(
        action,
        data={"csrf_token": token, "titre": "Sans type"},
        files={"fichier": ("a.txt", b"texte", "text/plain")},
        headers=HTML,
    )
    assert no_type.status_code == 422 and "Choisissez le type du document." in text_of(no_type)

    forged = client.post(
        action,
        data={"csrf_token": "forged", "type": "11488-4", "titre": "x"},
        files={"fichier": ("a.txt", b"texte", "text/plain")},
        headers=HTML,
    )
    assert forged.status_code == 403


def add_result_hidden_from_patient(
    client: TestClient, territory: Territory, page: httpx.Response, title: str
) -> httpx.Response:
    """A pathology result added from the record page, not visible to the patient."""
    return client.post(
        f"{territory.record}/documents",
        data={
            "csrf_token": csrf_of(page.text),
            "type": "11502-2",
            "titre": title,
            "invisible_patient": "1",
        },
        files={"fichier": ("r.pdf", pdf([title], seed=title), "application/pdf")},
        headers=HTML,
    )


def test_a_document_added_hidden_from_the_patient_keeps_its_visibility(
    client: TestClient, territory: Territory, make_account: MakeAccount
) -> None:
    page = reader(client, make_account, territory.practice, territory.record)
    assert "Non visible par le patient" in text_of(page)
    title = f"Résultat à annoncer {uuid.uuid4().hex[:6]}"
    added = add_result_hidden_from_patient(client, territory, page, title)
    assert added.status_code == 200 and added.url.params.get("ajoute") == "1"
    with transaction(territory.platform.sessions) as session:
        entry = session.scalars(select(DocumentEntry).where(DocumentEntry.title == title)).one()
        assert (entry.invisible_patient, entry.invisible_legal_reps, entry.masked_ps) == (
            True, False, False,
        )  # fmt: skip

    # A refused form keeps what was ticked.
    refused = client.post(
        f"{territory.record}/documents",
        data={"csrf_token": csrf_of(page.text), "type": "", "invisible_representants": "1"},
        files={"fichier": ("a.txt", b"texte", "text/plain")},
        headers=HTML,
    )
    assert refused.status_code == 422
    assert re.search(r'name="invisible_representants"[^>]*checked', refused.text)
    assert not re.search(r'name="invisible_patient"[^>]*checked', refused.text)


def test_the_author_changes_who_sees_a_document_and_nobody_else_can(
    client: TestClient, territory: Territory, make_account: MakeAccount
) -> None:
    """A result held back from the patient until the consultation, then shown: by its author
    from the document's page; another professional of the record sees no form, and her
    change is refused as if the document did not exist."""
    page = reader(client, make_account, territory.practice, territory.record)
    title = f"Biopsie {uuid.uuid4().hex[:6]}"
    add_result_hidden_from_patient(client, territory, page, title)
    with transaction(territory.platform.sessions) as session:
        entry_id = session.scalars(
            select(DocumentEntry.id).where(DocumentEntry.title == title)
        ).one()
    document = f"{territory.record}/documents/{entry_id}"
    shown = client.get(document, headers=HTML)
    assert "Qui voit ce document" in text_of(shown)
    assert re.search(r'name="invisible_patient"[^>]*checked', shown.text)
    changed = client.post(
        f"{document}/visibilite",
        data={"csrf_token": csrf_of(shown.text), "invisible_representants": "1"},
        headers=HTML,
    )
    assert changed.status_code == 200 and changed.url.params.get("visibilite") == "1"
    assert "La visibilité du document a été modifiée." in text_of(changed)
    with transaction(territory.platform.sessions) as session:
        entry = session.get(DocumentEntry, entry_id)
        assert entry is not None
        assert (entry.invisible_patient, entry.invisible_legal_reps, entry.masked_ps) == (
            False, True, False,
        )  # fmt: skip
    (audited,) = audit_rows(territory.platform, "document.visibility", territory.person_id)
    assert audited.entity_id == str(entry_id) and audited.outcome == "success"
    assert audited.detail["after"] == ["INVISIBLE_REPRESENTANTS_LEGAUX"]

    forged = client.post(f"{document}/visibilite", data={"csrf_token": "forged"}, headers=HTML)
    assert forged.status_code == 403

    # A hospital professional of the record reads it, but it is not hers to change.
    client.cookies.clear()
    other = reader(client, make_account, territory.chu, document)
    assert other.status_code == 200 and title in text_of(other)
    assert "Qui voit ce document" not in text_of(other)
    refused = client.post(
        f"{document}/visibilite",
        data={"csrf_token": csrf_of(other.text), "masque_ps": "1"},
        headers=HTML,
    )
    assert refused.status_code == 404
    with transaction(territory.platform.sessions) as session:
        entry = session.get(DocumentEntry, entry_id)
        assert entry is not None and entry.masked_ps is False


def test_no_deposit_form_without_an_identity_in_ones_establishment(
    client: TestClient, territory: Territory, make_account: MakeAccount
) -> None:
    # A professional who wrote a document sees it, and only it; she cannot file here.
    page = reader(client, make_account, territory.practice, "/")
    token = csrf_of(page.text)
    client.post(
        f"{territory.record}/documents",
        data={"csrf_token": token, "type": "11488-4", "titre": "Mot du cabinet"},
        files={"fichier": ("a.txt", b"Mot du cabinet", "text/plain")},
        headers=HTML,
    )
    with transaction(territory.platform.sessions) as session:
        # The practice's identity goes (e.g. merged away): the author still sees her note.
        for identity in session.scalars(
            select(LocalIdentity).where(LocalIdentity.establishment_id == territory.practice.id)
        ):
            identity.active = False
    text = text_of(client.get(territory.record, headers=HTML))
    assert "Mot du cabinet" in text
    assert "Compte rendu opératoire" not in text and "Note de suivi" not in text
    assert "Ajouter un document" not in text


def test_english(client: TestClient, territory: Territory, make_account: MakeAccount) -> None:
    reader(client, make_account, territory.practice, "/")
    client.cookies.set("lang", "en")
    text = text_of(client.get(territory.record, headers=HTML))
    assert "Record of" in text and "Add a document" in text and "Documents" in text
