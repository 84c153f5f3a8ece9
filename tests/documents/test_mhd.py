"""Documents through the FHIR API, as a hospital's system and a reader use it over a real
socket: ITI-65 deposit (all or nothing), ITI-67 search, ITI-68 retrieve, replacement,
status and visibility changes, and the access decision on each of them."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.documentreference import DocumentReference
from fhirpy import SyncFHIRClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from partage.app import create_app
from partage.audit.models import AuditEvent
from partage.db import transaction
from partage.directory.vienne import check_digit
from partage.documents.models import DocumentContent, DocumentEntry
from partage.documents.synthetic import pdf, provide_bundle
from partage.identity.service import MODEL_CACHE
from partage.platform import Platform
from partage.security import actions
from partage.security.models import Establishment, OAuthClient, Profile
from partage.security.oauth import issue_access_token
from partage.security.principal import operator_principal
from partage.security.scopes import Scopes
from tests.conftest import (
    TEST_PASSWORD,
    build_platform,
    create_hospital,
    directory_practitioner,
    free_port,
    serving,
)
from tests.documents.stored import contents_held, pack_files
from tests.identity.factories import receive, traits, unique_family
from tests.interop.tokens import system_token

CHU_OID = "1.2.250.1.999.87.1"
CLINIC_OID = "1.2.250.1.999.87.2"
SCOPES = "system/DocumentReference.crus system/Binary.r system/Patient.rs"


@dataclass
class Hospital:
    base: str
    platform: Platform
    chu: Establishment
    clinic: Establishment
    chu_token: str
    clinic_token: str
    rpps: str
    practitioner_id: str
    patient_ipp: str  # at the CHU
    person_id: str
    other_ipp: str  # a CHU patient the clinic does not know

    def post(self, body: Any, token: str | None = None) -> httpx.Response:
        content = body if isinstance(body, bytes | str) else json.dumps(body)
        return httpx.post(
            f"{self.base}/fhir",
            content=content,
            headers={
                "Authorization": f"Bearer {token or self.chu_token}",
                "Content-Type": "application/fhir+json",
            },
            timeout=30,
        )

    def get(self, path: str, token: str | None = None, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token or self.chu_token}"}
        headers.update(kwargs.pop("headers", {}))
        return httpx.get(f"{self.base}/fhir{path}", headers=headers, timeout=30, **kwargs)

    def bundle(self, content: bytes | None = None, **kwargs: Any) -> dict[str, Any]:
        kwargs.setdefault("local_id", self.patient_ipp)
        kwargs.setdefault("author_rpps", self.rpps)
        return provide_bundle(
            content=content
            if content is not None
            else pdf(["Compte rendu"], seed=str(uuid.uuid4())),
            domain_oid=CHU_OID,
            **kwargs,
        )

    def counts(self) -> tuple[int, int, int]:
        with self.platform.read_sessions() as session:
            return (
                session.scalar(select(func.count()).select_from(DocumentEntry)) or 0,
                session.scalar(select(func.count()).select_from(DocumentContent)) or 0,
                contents_held(self.platform),
            )


@pytest.fixture(scope="module")
def hospital(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hospital]:
    port = free_port()
    platform, database = build_platform(tmp_path_factory.mktemp("documents"), port)
    MODEL_CACHE.invalidate()
    chu = create_hospital(platform, "CHU-DOC", CHU_OID)
    clinic = create_hospital(platform, "CLIN-DOC", CLINIC_OID)
    digits = str(uuid.uuid4().int)[:10]
    rpps = "8" + digits + check_digit(digits)
    practitioner_id = str(directory_practitioner(platform, rpps))
    received = receive(platform, chu, "IPP-1", traits(unique_family()))
    receive(platform, chu, "IPP-2", traits(unique_family()))
    MODEL_CACHE.invalidate()
    app = create_app(platform.settings, platform=platform)
    with serving(app, port) as base:
        yield Hospital(
            base=base,
            platform=platform,
            chu=chu,
            clinic=clinic,
            chu_token=system_token(base, platform, SCOPES, name="DPI", establishment=chu),
            clinic_token=system_token(base, platform, SCOPES, name="DPI", establishment=clinic),
            rpps=rpps,
            practitioner_id=practitioner_id,
            patient_ipp="IPP-1",
            person_id=str(received.identity.person_id),
            other_ipp="IPP-2",
        )
    platform.close()
    database.drop()


def _location(response: httpx.Response) -> str:
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["type"] == "transaction-response"
    locations = [e["response"].get("location", "") for e in body["entry"]]
    document = next(loc for loc in locations if loc.startswith("DocumentReference/"))
    return document.split("/")[1]


def _search(hospital: Hospital, token: str | None = None, **params: str) -> list[dict[str, Any]]:
    response = hospital.get("/DocumentReference", token, params=params)
    assert response.status_code == 200, response.text
    Bundle.model_validate(response.json())
    return [e["resource"] for e in response.json().get("entry", [])]


def test_deposit_find_and_retrieve(hospital: Hospital) -> None:
    content = pdf(["Compte rendu de consultation", "Patient vu ce jour."], size=50_000, seed="a")
    assert len(content) == 50_000
    document_id = _location(hospital.post(hospital.bundle(content, title="Consultation")))

    found = _search(hospital, **{"patient.identifier": f"urn:oid:{CHU_OID}|{hospital.patient_ipp}"})
    assert document_id in [d["id"] for d in found]
    by_person = _search(hospital, patient=f"Patient/{hospital.person_id}")
    assert document_id in [d["id"] for d in by_person]

    read = hospital.get(f"/DocumentReference/{document_id}")
    assert read.status_code == 200, read.text
    resource = read.json()
    DocumentReference.model_validate(resource)
    assert resource["subject"]["reference"] == f"Patient/{hospital.person_id}"
    assert resource["author"][0]["reference"] == f"Practitioner/{hospital.practitioner_id}"
    attachment = resource["content"][0]["attachment"]
    assert attachment["size"] == 50_000 and attachment["contentType"] == "application/pdf"
    assert (
        attachment["hash"]
        == base64.b64encode(hashlib.sha1(content, usedforsecurity=False).digest()).decode()
    )

    retrieved = httpx.get(
        attachment["url"], headers={"Authorization": f"Bearer {hospital.chu_token}"}
    )
    assert retrieved.status_code == 200
    assert retrieved.content == content
    assert retrieved.headers["content-type"] == "application/pdf"
    assert retrieved.headers["x-content-type-options"] == "nosniff"

    ranged = hospital.get(f"/Binary/{document_id}", headers={"Range": "bytes=70000-"})
    assert ranged.status_code == 416
    ranged = hospital.get(f"/Binary/{document_id}", headers={"Range": "bytes=100-40099"})
    assert ranged.status_code == 206
    assert ranged.content == content[100:40100]
    assert ranged.headers["content-range"] == "bytes 100-40099/50000"
    tail = hospital.get(f"/Binary/{document_id}", headers={"Range": "bytes=-10"})
    assert tail.status_code == 206 and tail.content == content[-10:]

    # Stored encrypted: no file holds the plain bytes.
    assert pack_files(hospital.platform.settings.data_dir / "blobs")
    for path in (hospital.platform.settings.data_dir / "blobs").rglob("*"):
        if path.is_file():
            assert content[:2000] not in path.read_bytes()


def test_fhirpy_client_deposits_finds_and_retrieves(hospital: Hospital) -> None:
    """A hospital's system with an ordinary FHIR client library, end to end."""
    client = SyncFHIRClient(f"{hospital.base}/fhir", authorization=f"Bearer {hospital.chu_token}")
    content = pdf(["Lettre de liaison"], seed="fhirpy")
    bundle = hospital.bundle(content, type_code="18842-5", type_display="Lettre de liaison")
    response = client.execute("", method="post", data=bundle)
    assert response["type"] == "transaction-response"
    found = (
        client.resources("DocumentReference")
        .search(patient=f"Patient/{hospital.person_id}", type="http://loinc.org|18842-5")
        .fetch_all()
    )
    assert len(found) == 1
    url = found[0]["content"][0]["attachment"]["url"]
    assert (
        httpx.get(url, headers={"Authorization": f"Bearer {hospital.chu_token}"}).content == content
    )


def _outcome(response: httpx.Response, status: int, words: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    assert words in body["issue"][0]["diagnostics"], body


def test_bad_submissions_are_refused_and_store_nothing(hospital: Hospital) -> None:
    before = hospital.counts()
    good = hospital.bundle()

    wrong_hash = copy.deepcopy(good)
    wrong_hash["entry"][1]["resource"]["content"][0]["attachment"]["hash"] = base64.b64encode(
        b"x" * 20
    ).decode()
    _outcome(hospital.post(wrong_hash), 400, "hash does not match")

    wrong_size = copy.deepcopy(good)
    wrong_size["entry"][1]["resource"]["content"][0]["attachment"]["size"] = 12
    _outcome(hospital.post(wrong_size), 400, "declared size")

    wrong_type = copy.deepcopy(good)
    wrong_type["entry"][2]["resource"]["contentType"] = "text/plain"
    _outcome(hospital.post(wrong_type), 400, "contentType")

    no_patient = copy.deepcopy(good)
    del no_patient["entry"][1]["resource"]["subject"]
    _outcome(hospital.post(no_patient), 400, "patient is missing")

    _outcome(hospital.post(hospital.bundle(author_rpps="80000000000")), 422, "unknown author")
    _outcome(hospital.post(hospital.bundle(local_id="IPP-NOBODY")), 422, "no identity")
    # An identity of the CHU, deposited by the clinic: the same answer as a missing one.
    _outcome(hospital.post(hospital.bundle(), hospital.clinic_token), 422, "no identity")
    _outcome(
        hospital.post(hospital.bundle(b"<ClinicalDocument><oops>", mime_type="text/xml")),
        400,
        "not valid",
    )
    _outcome(hospital.post(b"{not json"), 400, "not JSON")
    _outcome(hospital.post({"resourceType": "Patient"}), 400, "not a FHIR Bundle")
    not_base64 = copy.deepcopy(good)
    not_base64["entry"][2]["resource"]["data"] = "%%%"
    _outcome(hospital.post(not_base64), 400, "base64")
    assert hospital.counts() == before

    # The same submission twice: the second is a duplicate, and changes nothing.
    _location(hospital.post(good))
    after_first = hospital.counts()
    _outcome(hospital.post(good), 409, "already received")
    assert hospital.counts() == after_first

    with hospital.platform.read_sessions() as session:
        refused = session.scalars(
            select(AuditEvent).where(
                AuditEvent.action == "document.deposit", AuditEvent.outcome == "refused"
            )
        ).all()
    assert len(refused) >= 8


def test_a_revoked_or_narrow_token_deposits_nothing(hospital: Hospital) -> None:
    """The token's current state is read in the transaction that files the deposit: a
    client revoked since its token was issued is refused at its next deposit."""
    narrow = system_token(
        hospital.base, hospital.platform, "system/DocumentReference.rs", establishment=hospital.chu
    )
    _outcome(hospital.post(hospital.bundle(), narrow), 403, "do not allow")
    token = system_token(hospital.base, hospital.platform, SCOPES, name="GONE",
                         establishment=hospital.chu)  # fmt: skip
    _location(hospital.post(hospital.bundle(), token))
    before = hospital.counts()
    with transaction(hospital.platform.sessions) as session:
        client = session.scalars(
            select(OAuthClient).where(OAuthClient.name == f"GONE {SCOPES}")
        ).one()
        actions.revoke_client(session, actor=operator_principal(), client=client)
    assert hospital.post(hospital.bundle(), token).status_code == 401
    assert hospital.post(b"{not json", token).status_code == 401
    assert hospital.post({"resourceType": "Patient"}, token).status_code == 401
    assert hospital.counts() == before


def test_replacement_keeps_the_history(hospital: Hospital) -> None:
    first = _location(hospital.post(hospital.bundle(pdf(["v1"], seed="v1"))))
    second = _location(hospital.post(hospital.bundle(pdf(["v2"], seed="v2"), replaces=first)))
    old = hospital.get(f"/DocumentReference/{first}").json()
    new = hospital.get(f"/DocumentReference/{second}").json()
    assert old["status"] == "superseded" and new["status"] == "current"
    assert new["relatesTo"][0] == {
        "code": "replaces",
        "target": {"reference": f"DocumentReference/{first}"},
    }
    assert new["meta"]["versionId"] == "2"
    current = _search(hospital, patient=f"Patient/{hospital.person_id}", status="current")
    ids = [d["id"] for d in current]
    assert second in ids and first not in ids
    # Replacing a superseded version is refused.
    _outcome(hospital.post(hospital.bundle(replaces=first)), 400, "not current")


def test_other_establishments_see_nothing_and_are_audited(hospital: Hospital) -> None:
    document_id = _location(hospital.post(hospital.bundle(local_id=hospital.other_ipp)))
    # The clinic holds no identity of that patient: nothing, and no hint the document exists.
    assert (
        hospital.get(f"/DocumentReference/{document_id}", hospital.clinic_token).status_code == 404
    )
    assert (
        hospital.get(f"/DocumentReference/{uuid.uuid4()}", hospital.clinic_token).status_code == 404
    )
    assert hospital.get(f"/Binary/{document_id}", hospital.clinic_token).status_code == 404
    found = _search(
        hospital,
        hospital.clinic_token,
        **{"patient.identifier": f"urn:oid:{CHU_OID}|{hospital.other_ipp}"},
    )
    assert found == []
    with hospital.platform.read_sessions() as session:
        denied = session.scalars(
            select(AuditEvent)
            .where(AuditEvent.action == "document.read", AuditEvent.entity_id == document_id)
            .order_by(AuditEvent.seq)
        ).all()
    assert [row.outcome for row in denied][-1:] == ["denied"]


def test_status_and_visibility_changes_by_the_depositor(hospital: Hospital) -> None:
    document_id = _location(hospital.post(hospital.bundle(visibility=("INVISIBLE_PATIENT",))))
    resource = hospital.get(f"/DocumentReference/{document_id}").json()
    codes = {c["code"] for label in resource["securityLabel"] for c in label["coding"]}
    assert "INVISIBLE_PATIENT" in codes

    resource["securityLabel"] = [{"coding": [{"code": "MASQUE_PS"}]}]
    response = httpx.put(
        f"{hospital.base}/fhir/DocumentReference/{document_id}",
        content=json.dumps(resource),
        headers={
            "Authorization": f"Bearer {hospital.chu_token}",
            "Content-Type": "application/fhir+json",
        },
    )
    assert response.status_code == 200, response.text
    codes = {c["code"] for label in response.json()["securityLabel"] for c in label["coding"]}
    assert "MASQUE_PS" in codes and "INVISIBLE_PATIENT" not in codes

    resource = response.json()
    resource["status"] = "entered-in-error"
    response = httpx.put(
        f"{hospital.base}/fhir/DocumentReference/{document_id}",
        content=json.dumps(resource),
        headers={
            "Authorization": f"Bearer {hospital.chu_token}",
            "Content-Type": "application/fhir+json",
        },
    )
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "entered-in-error"
    # The clinic may not change what it did not deposit.
    response = httpx.put(
        f"{hospital.base}/fhir/DocumentReference/{document_id}",
        content=json.dumps(resource),
        headers={
            "Authorization": f"Bearer {hospital.clinic_token}",
            "Content-Type": "application/fhir+json",
        },
    )
    assert response.status_code == 404


def test_search_parameters_sort_and_paging(hospital: Hospital) -> None:
    family_ipp = "IPP-PAGING"
    receive(hospital.platform, hospital.chu, family_ipp, traits(unique_family()))
    ids = []
    for day in range(1, 8):
        created = datetime(2024, 3, day, 9, 0, tzinfo=UTC)
        ids.append(
            _location(
                hospital.post(
                    hospital.bundle(
                        local_id=family_ipp,
                        created=created,
                        type_code="11502-2" if day % 2 else "11488-4",
                    )
                )
            )
        )
    identifier = f"urn:oid:{CHU_OID}|{family_ipp}"
    newest_first = _search(hospital, **{"patient.identifier": identifier})
    assert [d["id"] for d in newest_first] == list(reversed(ids))
    oldest_first = _search(hospital, **{"patient.identifier": identifier, "_sort": "creation"})
    assert [d["id"] for d in oldest_first] == ids
    labs = _search(
        hospital, **{"patient.identifier": identifier, "type": "http://loinc.org|11502-2"}
    )
    assert len(labs) == 4
    window = _search(
        hospital, **{"patient.identifier": identifier, "creation": "ge2024-03-03", "_count": "50"}
    )
    assert len(window) == 5
    pages: list[str] = []
    url: str | None = (
        f"{hospital.base}/fhir/DocumentReference?patient.identifier={identifier}&_count=3"
    )
    while url:
        page = httpx.get(url, headers={"Authorization": f"Bearer {hospital.chu_token}"}).json()
        pages += [e["resource"]["id"] for e in page.get("entry", [])]
        url = next((link["url"] for link in page["link"] if link["relation"] == "next"), None)
    assert pages == list(reversed(ids))
    response = hospital.get("/DocumentReference", params={"type": "11502-2"})
    assert response.status_code == 400 and "one patient" in response.text
    for nul in ({"patient.identifier": f"urn:oid:{CHU_OID}|\x00"}, {"patient": "Patient/\x00"},
                {"patient.identifier": identifier, "type": "\x00"}):  # fmt: skip
        assert hospital.get("/DocumentReference", params=nul).status_code in (200, 400)
    response = hospital.get(
        "/DocumentReference", params={"patient": f"Patient/{hospital.person_id}", "_sort": "title"}
    )
    assert response.status_code == 400


def _person_token(
    hospital: Hospital,
    profile: Profile,
    *,
    establishment: Establishment | None = None,
    person_id: str | None = None,
    national_id: str | None = None,
) -> str:
    """A person's access token (signing in is tested elsewhere)."""
    context = "patient" if profile is Profile.patient else "user"
    with transaction(hospital.platform.sessions) as session:
        account = actions.create_account(
            session,
            hospital.platform.passwords,
            actor=operator_principal(),
            login=f"{profile.value.replace('_', '-')}-{uuid.uuid4().hex[:8]}",
            display_name="Test",
            profile=profile,
            password=TEST_PASSWORD,
            establishment=session.merge(establishment) if establishment else None,
            person_id=uuid.UUID(person_id) if person_id else None,
            national_id=national_id,
        )
        client = actions.create_client(
            session,
            hospital.platform.keyring,
            actor=operator_principal(),
            name="Portal",
            scopes=f"openid {context}/DocumentReference.rs {context}/Binary.r",
            redirect_uris=["https://portal.example/callback"],
        ).client
    return issue_access_token(
        hospital.platform,
        subject=str(account.id),
        client=client,
        scope=Scopes.parse(f"{context}/DocumentReference.rs {context}/Binary.r"),
        kind="account",
    ).value


def test_people_see_what_the_record_rules_let_them(hospital: Hospital) -> None:
    ipp = f"IPP-PEOPLE-{uuid.uuid4().hex[:6]}"
    person_id = str(
        receive(hospital.platform, hospital.chu, ipp, traits(unique_family())).identity.person_id
    )
    plain = _location(hospital.post(hospital.bundle(local_id=ipp)))
    hidden = _location(
        hospital.post(hospital.bundle(local_id=ipp, visibility=("INVISIBLE_PATIENT",)))
    )
    masked = _location(hospital.post(hospital.bundle(local_id=ipp, visibility=("MASQUE_PS",))))
    own = {"patient": f"Patient/{person_id}"}

    patient = _person_token(hospital, Profile.patient, person_id=person_id)
    assert {d["id"] for d in _search(hospital, patient, **own)} == {plain, masked}
    assert hospital.get(f"/DocumentReference/{hidden}", patient).status_code == 404
    assert hospital.get(f"/Binary/{plain}", patient).status_code == 200
    stranger = _person_token(hospital, Profile.patient, person_id=hospital.person_id)
    assert _search(hospital, stranger, **own) == []
    assert hospital.get(f"/Binary/{plain}", stranger).status_code == 404

    doctor = _person_token(hospital, Profile.hospital_physician, establishment=hospital.chu)
    assert {d["id"] for d in _search(hospital, doctor, **own)} == {plain, hidden}
    assert hospital.get(f"/DocumentReference/{masked}", doctor).status_code == 404
    # The author sees what they wrote, masked or not, from anywhere.
    author = _person_token(
        hospital, Profile.city_physician, establishment=hospital.clinic, national_id=hospital.rpps
    )
    assert {d["id"] for d in _search(hospital, author, **own)} == {plain, hidden, masked}
    outsider = _person_token(hospital, Profile.nurse, establishment=hospital.clinic)
    assert _search(hospital, outsider, **own) == []
    vigilance = _person_token(hospital, Profile.identity_vigilance, establishment=hospital.chu)
    assert hospital.get("/DocumentReference", vigilance, params=own).status_code in (403, 404)


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)
_PATHS = (
    ("entry",),
    ("entry", 0, "resource"),
    ("entry", 0, "resource", "identifier"),
    ("entry", 0, "resource", "extension"),
    ("entry", 1, "resource", "subject"),
    ("entry", 1, "resource", "author"),
    ("entry", 1, "resource", "securityLabel"),
    ("entry", 1, "resource", "content"),
    ("entry", 1, "resource", "content", 0, "attachment"),
    ("entry", 1, "resource", "content", 0, "attachment", "size"),
    ("entry", 1, "resource", "context"),
    ("entry", 1, "resource", "relatesTo"),
    ("entry", 1, "resource", "masterIdentifier"),
    ("entry", 2, "resource", "data"),
    ("entry", 2, "request"),
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(path=st.sampled_from(_PATHS), value=_JSON)
def test_malformed_bundles_are_refused_never_a_server_error(
    hospital: Hospital, path: tuple[str | int, ...], value: object
) -> None:
    bundle = hospital.bundle()
    target: Any = bundle
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    response = hospital.post(bundle)
    assert response.status_code < 500, response.text
    if response.status_code != 200:
        assert response.json()["resourceType"] == "OperationOutcome"


@settings(max_examples=20, deadline=None)
@given(changes=st.dictionaries(st.sampled_from(["status", "meta", "securityLabel"]), _JSON))
def test_malformed_updates_are_refused_never_a_server_error(
    hospital: Hospital, changes: dict[str, object]
) -> None:
    document_id = _fixed_document(hospital)
    resource = {"resourceType": "DocumentReference", "id": document_id, **changes}
    response = httpx.put(
        f"{hospital.base}/fhir/DocumentReference/{document_id}",
        content=json.dumps(resource),
        headers={
            "Authorization": f"Bearer {hospital.chu_token}",
            "Content-Type": "application/fhir+json",
        },
    )
    assert response.status_code < 500, response.text


_FIXED: dict[str, str] = {}


def _fixed_document(hospital: Hospital) -> str:
    if hospital.base not in _FIXED:
        _FIXED[hospital.base] = _location(hospital.post(hospital.bundle()))
    return _FIXED[hospital.base]
