"""The master patient index through the FHIR API, as PDQm and PIXm consumers use it over a
real socket: Patient read and search (ITI-78), `$match` (ITI-119), `$ihe-pix` (ITI-83), and
the audit row every one of those writes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any

import httpx
import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.parameters import Parameters
from fhir.resources.R4B.patient import Patient as FhirPatient
from fhirpy import SyncFHIRClient
from sqlalchemy import select

from partage.app import create_app
from partage.audit.models import AuditEvent
from partage.db import transaction
from partage.identity.fhir_patient import PERSON_ID_SYSTEM
from partage.identity.ins import INS_NIR_OID, make_nir
from partage.identity.operations import do_merge_local
from partage.identity.service import MODEL_CACHE
from partage.identity.traits import IdentityStatus, IdentityTraits, Sex
from partage.platform import Platform
from partage.security import actions
from partage.security.models import Establishment, Profile
from partage.security.oauth import issue_access_token
from partage.security.principal import operator_principal
from partage.security.scopes import Scopes
from tests.conftest import TEST_PASSWORD, build_platform, create_hospital, free_port, serving
from tests.identity.factories import TEST_ACTOR, receive, traits, unique_family
from tests.interop.tokens import system_token

INS_SYSTEM = f"urn:oid:{INS_NIR_OID}"
CHU_OID = "1.2.250.1.999.86.1"
CHNV_OID = "1.2.250.1.999.86.2"
CHU_SYSTEM = f"urn:oid:{CHU_OID}"
CHNV_SYSTEM = f"urn:oid:{CHNV_OID}"
MATCH_GRADE = "http://hl7.org/fhir/StructureDefinition/match-grade"
CROWD = 25  # persons sharing one family name, for paging


@dataclass
class Names:
    family: str  # person A's birth name (and person B's: a homonym)
    used: str  # person A's used name
    accented: str  # person D's birth name, with an accent
    crowd: str  # the family name of CROWD persons
    merged: str  # person E, whose two CHU ids the CHU merged (A40)


@dataclass
class PatientServer:
    base: str
    token: str
    platform: Platform
    names: Names
    nir: str
    ids: dict[str, str]  # person ids by label

    def fhir(self, token: str | None = None) -> SyncFHIRClient:
        return SyncFHIRClient(f"{self.base}/fhir", authorization=f"Bearer {token or self.token}")

    def get(self, path: str, token: str | None = None, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token or self.token}"}
        headers.update(kwargs.pop("headers", {}))
        return httpx.get(f"{self.base}/fhir{path}", headers=headers, **kwargs)

    def post(self, path: str, body: Any, token: str | None = None, **kwargs: Any) -> httpx.Response:
        headers = {
            "Authorization": f"Bearer {token or self.token}",
            "Content-Type": "application/fhir+json",
        }
        headers.update(kwargs.pop("headers", {}))
        content = body if isinstance(body, str | bytes) else json.dumps(body)
        return httpx.post(f"{self.base}/fhir{path}", content=content, headers=headers, **kwargs)

    def audit(self, action: str) -> AuditEvent:
        """The last audit row of `action`."""
        with self.platform.read_sessions() as session:
            row = session.scalars(
                select(AuditEvent)
                .where(AuditEvent.action == action)
                .order_by(AuditEvent.seq.desc())
            ).first()
            assert row is not None, action
            return row


def _account_token(platform: Platform, profile: Profile, establishment: Establishment) -> str:
    """A person's access token (the sign-in flow itself is tested elsewhere)."""
    with transaction(platform.sessions) as session:
        account = actions.create_account(
            session,
            platform.passwords,
            actor=operator_principal(),
            login=f"{profile.value.replace('_', '-')}-{unique_family().lower()}",
            display_name=f"Test {profile.value}",
            profile=profile,
            password=TEST_PASSWORD,
            establishment=establishment,
        )
        client = actions.create_client(
            session,
            platform.keyring,
            actor=operator_principal(),
            name="EHR",
            scopes="openid user/*.rs",
            redirect_uris=["https://ehr.example/callback"],
        ).client
    issued = issue_access_token(
        platform,
        subject=str(account.id),
        client=client,
        scope=Scopes.parse("user/Patient.rs"),
        kind="account",
    )
    return issued.value


def _traits(family: str, **overrides: Any) -> IdentityTraits:
    """Every trait the tests rely on given here, whatever the factory's defaults."""
    values: dict[str, Any] = {
        "given_names": ("Marie", "Louise"),
        "sex": Sex.female,
        "birth_date": date(1968, 4, 17),
        "birth_place_code": "86194",
        "address": "12 rue de la Cathédrale",
        "postal_code": "86000",
        "city": "Poitiers",
        "phone": "0549001122",
    }
    values.update(overrides)
    return traits(family, **values)


def _person(received: Any) -> str:
    return str(received.identity.person_id)


@pytest.fixture(scope="module")
def patients(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PatientServer]:
    port = free_port()
    platform, database = build_platform(tmp_path_factory.mktemp("fhir-patient"), port)
    # The matching model and the population size are cached per process: read them here.
    MODEL_CACHE.invalidate()
    chu = create_hospital(platform, "CHU-TEST", CHU_OID)
    chnv = create_hospital(platform, "CHNV-TEST", CHNV_OID)
    family, used, crowd, merged = (unique_family() for _ in range(4))
    base_name = unique_family()
    accented = base_name[:3] + "É" + base_name[4:]
    names = Names(family, used, accented, crowd, merged)
    nir = make_nir(
        sex=Sex.female, birth_date=date(1968, 4, 17), birth_place_code="86194", order=412
    )
    ids: dict[str, str] = {}
    # A: qualified at the CHU (INS), known to the CHNV under its own IPP: one person.
    a1 = receive(
        platform,
        chu,
        "IPP-A1",
        _traits(family, used_family_name=used, ins=nir),
        status=IdentityStatus.qualified,
    )
    a2 = receive(platform, chnv, "A-9", _traits(family.title(), given_names=("Marie",)))
    assert _person(a1) == _person(a2)
    ids["A"] = _person(a1)
    # B: a homonym of A (same names, born three years later, elsewhere).
    b = receive(
        platform,
        chu,
        "IPP-B1",
        _traits(
            family,
            given_names=("Marie", "Jeanne"),
            birth_date=date(1971, 9, 2),
            address="3 place du Marché",
            postal_code="86100",
            city="Châtellerault",
            phone="0549990000",
            birth_place_code="86066",
        ),
    )
    ids["B"] = _person(b)
    assert ids["B"] != ids["A"]
    # D: an accented name.
    d = receive(
        platform,
        chnv,
        "D-1",
        _traits(accented, given_names=("Éloïse",), birth_date=date(1990, 2, 3), phone="0600000001"),
    )
    ids["D"] = _person(d)
    # A crowd of one family name, for paging; men and women alternately.
    for i in range(CROWD):
        receive(
            platform,
            chu,
            f"C-{i:03d}",
            _traits(
                crowd,
                given_names=(unique_family()[:6].title(),),
                sex=Sex.male if i % 2 else Sex.female,
                birth_date=date(1930 + 2 * i, 1 + i % 12, 1 + i % 27),
                phone=f"05490{i:05d}",
                address=f"{i} rue des Tests",
            ),
        )
    # E: two CHU ids of one patient, the CHU merging the second into the first (A40).
    e1 = receive(platform, chu, "E-1", _traits(merged, given_names=("Paul",), sex=Sex.male))
    e2 = receive(
        platform,
        chu,
        "E-2",
        _traits(merged, given_names=("Paul",), sex=Sex.male, birth_date=date(1975, 10, 30)),
    )
    ids["E"], ids["E-old"] = _person(e1), _person(e2)
    assert ids["E"] != ids["E-old"]
    with transaction(platform.sessions) as session:
        do_merge_local(
            session,
            establishment_id=chu.id,
            surviving_local_id="E-1",
            absorbed_local_id="E-2",
            actor=TEST_ACTOR,
        )
    MODEL_CACHE.invalidate()
    app = create_app(platform.settings, platform=platform)
    with serving(app, port) as base:
        token = system_token(base, platform, "system/Patient.rs")
        yield PatientServer(base, token, platform, names, nir, ids)
    platform.close()
    database.drop()


def _ids(bundle: dict[str, Any]) -> list[str]:
    return [e["resource"]["id"] for e in bundle.get("entry", []) if e["search"]["mode"] == "match"]


def _identifiers(resource: dict[str, Any]) -> dict[str, str]:
    return {i["system"]: i["value"] for i in resource["identifier"] if i.get("use") != "old"}


# --- $ihe-pix ------------------------------------------------------------------------------


def test_pix_gives_the_other_domains_ids_of_a_patient(patients: PatientServer) -> None:
    response = patients.get(
        "/Patient/$ihe-pix", params={"sourceIdentifier": f"{CHU_SYSTEM}|IPP-A1"}
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/fhir+json")
    answer = response.json()
    Parameters.model_validate(answer)
    identifiers = {
        (p["valueIdentifier"]["system"], p["valueIdentifier"]["value"])
        for p in answer["parameter"]
        if p["name"] == "targetIdentifier"
    }
    assert identifiers == {
        (CHNV_SYSTEM, "A-9"),
        (PERSON_ID_SYSTEM, patients.ids["A"]),
        (INS_SYSTEM, patients.nir),
    }
    targets = [
        p["valueReference"]["reference"] for p in answer["parameter"] if p["name"] == "targetId"
    ]
    assert targets == [f"Patient/{patients.ids['A']}"]
    audit = patients.audit("patient.pix")
    assert audit.person_id == patients.ids["A"]
    assert audit.basis == "territory_system"
    assert "IPP-A1" not in json.dumps(audit.detail)


def test_pix_target_systems_filter_and_other_sources(patients: PatientServer) -> None:
    only_chnv = patients.get(
        "/Patient/$ihe-pix",
        params={"sourceIdentifier": f"{CHU_SYSTEM}|IPP-A1", "targetSystem": CHNV_SYSTEM},
    ).json()
    assert only_chnv["parameter"] == [
        {
            "name": "targetIdentifier",
            "valueIdentifier": {
                "use": "usual",
                "type": {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/v2-0203",
                            "code": "PI",
                            "display": "Patient internal identifier",
                        }
                    ]
                },
                "system": CHNV_SYSTEM,
                "value": "A-9",
                "assigner": {"display": "Hôpital CHNV-TEST"},
            },
        }
    ]
    # From the INS, and from the territory's identifier, to the CHU's IPP.
    for source in (f"{INS_SYSTEM}|{patients.nir}", f"{PERSON_ID_SYSTEM}|{patients.ids['A']}"):
        answer = patients.get(
            "/Patient/$ihe-pix", params={"sourceIdentifier": source, "targetSystem": CHU_SYSTEM}
        ).json()
        assert [p["valueIdentifier"]["value"] for p in answer["parameter"]] == ["IPP-A1"]
    # The FHIR logical id form, asking for the logical id only.
    base = f"{patients.base}/fhir"
    logical = patients.get(
        "/Patient/$ihe-pix",
        params={"sourceIdentifier": f"{base}|Patient/{patients.ids['A']}", "targetSystem": base},
    ).json()
    assert logical["parameter"] == [
        {"name": "targetId", "valueReference": {"reference": f"Patient/{patients.ids['A']}"}}
    ]


def test_pix_errors_as_pixm_says(patients: PatientServer) -> None:
    cases = [
        ({"sourceIdentifier": f"{CHU_SYSTEM}|NOPE"}, 404, "not-found"),
        ({"sourceIdentifier": f"{PERSON_ID_SYSTEM}|not-a-uuid"}, 404, "not-found"),
        ({"sourceIdentifier": "urn:oid:1.2.3.4.5|IPP-A1"}, 400, "code-invalid"),
        (
            {"sourceIdentifier": f"{CHU_SYSTEM}|IPP-A1", "targetSystem": "urn:oid:1.2.3.4.5"},
            403,
            "code-invalid",
        ),
        ({"sourceIdentifier": "IPP-A1"}, 400, "invalid"),
        ({}, 400, "invalid"),
        ({"sourceIdentifier": f"{CHU_SYSTEM}|IPP-A1", "family": "x"}, 400, "invalid"),
    ]
    for params, status, code in cases:
        response = patients.get("/Patient/$ihe-pix", params=params)
        assert response.status_code == status, (params, response.text)
        outcome = response.json()
        OperationOutcome.model_validate(outcome)
        assert outcome["issue"][0]["code"] == code, params
    assert patients.audit("patient.pix").outcome == "not_found"
    refused = httpx.post(
        f"{patients.base}/fhir/Patient/$ihe-pix",
        headers={"Authorization": f"Bearer {patients.token}"},
    )
    assert refused.status_code == 405
    assert patients.get("/Patient/$everything").json()["issue"][0]["code"] == "not-supported"


def test_a_merged_id_resolves_to_the_surviving_patient(patients: PatientServer) -> None:
    answer = patients.get("/Patient/$ihe-pix", params={"sourceIdentifier": f"{CHU_SYSTEM}|E-2"})
    assert answer.status_code == 200, answer.text
    parameters = answer.json()["parameter"]
    assert {
        "name": "targetId",
        "valueReference": {"reference": f"Patient/{patients.ids['E']}"},
    } in (parameters)
    values = [p["valueIdentifier"]["value"] for p in parameters if p["name"] == "targetIdentifier"]
    assert sorted(values) == sorted(["E-1", patients.ids["E"]])
    old_person = patients.get(
        "/Patient/$ihe-pix",
        params={"sourceIdentifier": f"{PERSON_ID_SYSTEM}|{patients.ids['E-old']}"},
    ).json()
    assert {
        "name": "targetId",
        "valueReference": {"reference": f"Patient/{patients.ids['E']}"},
    } in (old_person["parameter"])
    # The absorbed person reads as inactive, replaced by the survivor; the survivor shows
    # the retired IPP as an old one.
    absorbed = patients.get(f"/Patient/{patients.ids['E-old']}").json()
    FhirPatient.model_validate(absorbed)
    assert absorbed["active"] is False
    assert absorbed["link"] == [
        {"other": {"reference": f"Patient/{patients.ids['E']}"}, "type": "replaced-by"}
    ]
    survivor = patients.get(f"/Patient/{patients.ids['E']}").json()
    assert survivor["active"] is True
    assert {"other": {"reference": f"Patient/{patients.ids['E-old']}"}, "type": "replaces"} in (
        survivor["link"]
    )
    assert [i["value"] for i in survivor["identifier"] if i["use"] == "old"] == ["E-2"]
    merged_only = patients.fhir().resources("Patient").search(active="false").fetch_all()
    assert patients.ids["E-old"] in {p.id for p in merged_only}


# --- read and search (PDQm ITI-78) ---------------------------------------------------------


def test_read_renders_an_fr_core_patient_and_is_audited(patients: PatientServer) -> None:
    response = patients.get(f"/Patient/{patients.ids['A']}")
    assert response.status_code == 200
    assert response.headers["etag"].startswith('W/"')
    patient = response.json()
    FhirPatient.model_validate(patient)
    assert patient["meta"]["profile"] == [
        "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-patient"
    ]
    assert _identifiers(patient) == {
        PERSON_ID_SYSTEM: patients.ids["A"],
        INS_SYSTEM: patients.nir,
        CHU_SYSTEM: "IPP-A1",
        CHNV_SYSTEM: "A-9",
    }
    ins = next(i for i in patient["identifier"] if i["system"] == INS_SYSTEM)
    assert ins["type"]["coding"][0]["code"] == "INS-NIR"
    # The traits of the qualified identity (the most reliable).
    assert patient["name"] == [
        {"use": "official", "family": patients.names.family, "given": ["Marie", "Louise"]},
        {"use": "usual", "family": patients.names.used},
    ]
    assert patient["gender"] == "female"
    assert patient["birthDate"] == "1968-04-17"
    assert patient["address"][0]["postalCode"] == "86000"
    assert patient["telecom"] == [{"system": "phone", "value": "0549001122"}]
    birth_place = patient["extension"][0]
    assert birth_place["url"] == "http://hl7.org/fhir/StructureDefinition/patient-birthPlace"
    assert birth_place["valueAddress"]["extension"][0]["valueCoding"]["code"] == "86194"
    audit = patients.audit("patient.read")
    assert (audit.entity_type, audit.entity_id, audit.person_id) == (
        "Patient",
        patients.ids["A"],
        patients.ids["A"],
    )
    assert audit.outcome == "success"
    assert audit.basis == "territory_system"
    assert patients.names.family not in json.dumps(audit.detail)
    for missing in ("/Patient/00000000-0000-0000-0000-000000000000", "/Patient/x"):
        response = patients.get(missing)
        assert response.status_code == 404
        assert response.json()["resourceType"] == "OperationOutcome"
        assert patients.audit("patient.read").outcome == "not_found"


def test_search_by_names_accent_and_case_insensitive(patients: PatientServer) -> None:
    client = patients.fhir()
    names = patients.names
    for spelling in (names.family.lower(), names.family.title(), names.family[:5].lower()):
        found = {p.id for p in client.resources("Patient").search(family=spelling).fetch_all()}
        assert found == {patients.ids["A"], patients.ids["B"]}, spelling
    # The used name finds its person too.
    by_used = client.resources("Patient").search(family=names.used.lower()).fetch_all()
    assert [p.id for p in by_used] == [patients.ids["A"]]
    plain = names.accented.replace("É", "e").lower()
    accented = client.resources("Patient").search(family=plain).fetch_all()
    assert [p.id for p in accented] == [patients.ids["D"]]
    assert accented[0]["name"][0]["family"] == names.accented
    given = client.resources("Patient").search(family=names.family, given="jeanne").fetch_all()
    assert [p.id for p in given] == [patients.ids["B"]]
    eloise = client.resources("Patient").search(given="eloise", family=plain).fetch_all()
    assert [p.id for p in eloise] == [patients.ids["D"]]
    exact = client.resources("Patient").search(**{"family:exact": names.family.lower()}).fetch_all()
    assert exact == []
    for patient in by_used + accented:
        FhirPatient.model_validate(patient.serialize())


def test_search_by_birthdate_gender_postal_code_and_phone(patients: PatientServer) -> None:
    client = patients.fhir()
    family = patients.names.family
    on_the_day = client.resources("Patient").search(family=family, birthdate="1968-04-17")
    assert [p.id for p in on_the_day.fetch_all()] == [patients.ids["A"]]
    later = client.resources("Patient").search(family=family, birthdate="ge1970")
    assert [p.id for p in later.fetch_all()] == [patients.ids["B"]]
    in_month = client.resources("Patient").search(family=family, birthdate="1971-09")
    assert [p.id for p in in_month.fetch_all()] == [patients.ids["B"]]
    crowd = patients.names.crowd
    men = client.resources("Patient").search(family=crowd, gender="male").fetch_all()
    assert len(men) == CROWD // 2
    assert {p["gender"] for p in men} == {"male"}
    postal = client.resources("Patient").search(family=family, **{"address-postalcode": "861"})
    assert [p.id for p in postal.fetch_all()] == [patients.ids["B"]]
    phone = client.resources("Patient").search(telecom="+33 5 49 99 00 00").fetch_all()
    assert [p.id for p in phone] == [patients.ids["B"]]
    for params in (
        {"birthdate": "1968-13-01"},
        {"birthdate": "ap1968"},
        {"gender": "F"},
        {"family": "---"},
        {"family:sounds": "x"},
        {"_include": "Patient:organization"},
        {"_count": "10"},  # no criterion: the index is not listed
    ):
        response = patients.get("/Patient", params=params)
        assert response.status_code == 400, params
        assert response.json()["resourceType"] == "OperationOutcome"


def test_search_by_identifier(patients: PatientServer) -> None:
    client = patients.fhir()
    a = patients.ids["A"]
    for identifier in (
        f"{CHU_SYSTEM}|IPP-A1",
        f"{CHNV_SYSTEM}|A-9",
        "A-9",
        f"{INS_SYSTEM}|{patients.nir}",
        f"{PERSON_ID_SYSTEM}|{a}",
        a,
    ):
        found = client.resources("Patient").search(identifier=identifier).fetch_all()
        assert [p.id for p in found] == [a], identifier
    assert client.resources("Patient").search(identifier=f"{CHNV_SYSTEM}|IPP-A1").fetch_all() == []
    assert (
        client.resources("Patient").search(identifier="http://elsewhere|IPP-A1").fetch_all() == []
    )
    # A retired id finds the patient who absorbed it.
    retired = client.resources("Patient").search(identifier=f"{CHU_SYSTEM}|E-2").fetch_all()
    assert [p.id for p in retired] == [patients.ids["E"]]
    by_id = client.resources("Patient").search(_id=a).fetch_all()
    assert [p.id for p in by_id] == [a]


def test_paging_one_entry_per_person_and_audit(patients: PatientServer) -> None:
    client = patients.fhir()
    search = client.resources("Patient").search(family=patients.names.crowd).limit(10)
    assert search.count() == CROWD
    ids = [p.id for p in search.fetch_all()]
    assert len(ids) == len(set(ids)) == CROWD
    first = patients.get(
        "/Patient", params={"family": patients.names.crowd, "_count": "10", "_total": "accurate"}
    ).json()
    Bundle.model_validate(first)
    assert first["total"] == CROWD
    assert len(first["entry"]) == 10
    audit = patients.audit("patient.search")
    assert audit.detail["persons"] == _ids(first)
    assert audit.detail["parameters"] == ["family"]
    assert audit.basis == "territory_system"
    assert patients.names.crowd not in json.dumps(audit.detail)
    next_url = next(link["url"] for link in first["link"] if link["relation"] == "next")
    headers = {"Authorization": f"Bearer {patients.token}"}
    page_two = httpx.get(next_url, headers=headers).json()
    again = httpx.get(next_url, headers=headers).json()
    assert _ids(page_two) == _ids(again)
    assert set(_ids(page_two)).isdisjoint(_ids(first))
    assert patients.audit("patient.search").detail["next_page"] is True
    # A person two of whose identities match is one entry.
    both = client.resources("Patient").search(identifier=f"{CHU_SYSTEM}|IPP-A1,{CHNV_SYSTEM}|A-9")
    assert [p.id for p in both.fetch_all()] == [patients.ids["A"]]
    assert patients.audit("patient.search").person_id == patients.ids["A"]
    by_post = httpx.post(
        f"{patients.base}/fhir/Patient/_search",
        data={"family": patients.names.used},
        headers=headers,
    )
    assert _ids(by_post.json()) == [patients.ids["A"]]


# --- $match (PDQm ITI-119) -----------------------------------------------------------------


def _patient_to_match(patients: PatientServer, **changes: Any) -> dict[str, Any]:
    patient: dict[str, Any] = {
        "resourceType": "Patient",
        "extension": [
            {
                "url": "http://hl7.org/fhir/StructureDefinition/patient-birthPlace",
                "valueAddress": {
                    "extension": [
                        {
                            "url": "https://hl7.fr/ig/fhir/core/StructureDefinition/"
                            "fr-core-address-insee-code",
                            "valueCoding": {"code": "86194"},
                        }
                    ]
                },
            }
        ],
        "name": [
            {"use": "official", "family": patients.names.family, "given": ["Marie", "Louise"]},
            {"use": "usual", "family": patients.names.used},
        ],
        "gender": "female",
        "birthDate": "1968-04-17",
        "address": [{"use": "home", "line": ["12 rue de la Cathédrale"], "postalCode": "86000"}],
        "telecom": [{"system": "phone", "value": "05 49 00 11 22"}],
    }
    patient.update(changes)
    return patient


def _parameters(patient: dict[str, Any], **others: Any) -> dict[str, Any]:
    parameters: list[dict[str, Any]] = [{"name": "resource", "resource": patient}]
    if "only_certain" in others:
        parameters.append({"name": "onlyCertainMatches", "valueBoolean": others["only_certain"]})
    if "count" in others:
        parameters.append({"name": "count", "valueInteger": others["count"]})
    return {"resourceType": "Parameters", "parameter": parameters}


def _grades(bundle: dict[str, Any]) -> list[tuple[str, str, float]]:
    return [
        (
            e["resource"]["id"],
            next(x["valueCode"] for x in e["search"]["extension"] if x["url"] == MATCH_GRADE),
            e["search"]["score"],
        )
        for e in bundle.get("entry", [])
    ]


def test_match_ranks_the_right_person_first(patients: PatientServer) -> None:
    body = _parameters(_patient_to_match(patients))
    Parameters.model_validate(body)
    response = patients.post("/Patient/$match", body)
    assert response.status_code == 200, response.text
    bundle = response.json()
    Bundle.model_validate(bundle)
    for entry in bundle["entry"]:
        FhirPatient.model_validate(entry["resource"])
    grades = _grades(bundle)
    assert grades[0][:2] == (patients.ids["A"], "certain")
    assert 0 < grades[0][2] <= 1
    others = {person: (grade, score) for person, grade, score in grades[1:]}
    assert patients.ids["B"] not in others or (
        others[patients.ids["B"]][0] != "certain" and others[patients.ids["B"]][1] <= grades[0][2]
    )
    assert bundle["total"] == len(grades)
    audit = patients.audit("patient.match")
    assert audit.detail["persons"][0] == patients.ids["A"]
    assert patients.names.family not in json.dumps(audit.detail)
    assert "1968" not in json.dumps(audit.detail)


def test_match_options_and_bare_patient(patients: PatientServer) -> None:
    certain = patients.post(
        "/Patient/$match", _parameters(_patient_to_match(patients), only_certain=True)
    ).json()
    assert [g[:2] for g in _grades(certain)] == [(patients.ids["A"], "certain")]
    one = patients.post("/Patient/$match", _parameters(_patient_to_match(patients), count=1)).json()
    assert [g[0] for g in _grades(one)] == [patients.ids["A"]]
    bare = patients.post("/Patient/$match", _patient_to_match(patients)).json()
    assert _grades(bare)[0][:2] == (patients.ids["A"], "certain")
    # By the INS alone (FR Core conveys it for qualified identities only).
    by_ins = _patient_to_match(
        patients,
        name=[],
        identifier=[{"system": INS_SYSTEM, "value": patients.nir}],
        extension=[],
        address=[],
        telecom=[],
    )
    assert _grades(patients.post("/Patient/$match", by_ins).json())[0][:2] == (
        patients.ids["A"],
        "certain",
    )
    # The homonym alone is not certain.
    homonym = _patient_to_match(
        patients,
        name=[{"use": "official", "family": patients.names.family, "given": ["Marie"]}],
        birthDate="1971-09-02",
        extension=[],
        address=[],
        telecom=[],
    )
    graded = {p: g for p, g, _ in _grades(patients.post("/Patient/$match", homonym).json())}
    assert graded.get(patients.ids["B"]) in ("certain", "probable")
    assert graded.get(patients.ids["A"]) != "certain"
    nobody = _patient_to_match(
        patients, name=[{"family": unique_family(), "given": ["Zoé"]}], birthDate="2001-01-01"
    )
    nobody.update(extension=[], address=[], telecom=[])
    empty = patients.post("/Patient/$match", nobody).json()
    assert empty["total"] == 0 and "entry" not in empty


def test_match_refuses_malformed_input(patients: PatientServer) -> None:
    good = _patient_to_match(patients)
    cases: list[tuple[Any, int]] = [
        ({"resourceType": "Parameters", "parameter": []}, 400),
        ({"resourceType": "Parameters"}, 400),
        ({"resourceType": "Observation"}, 400),
        ([good], 400),
        (_parameters({"resourceType": "Practitioner"}), 400),
        (_parameters(_patient_to_match(patients, name=[])), 400),
        (_parameters(_patient_to_match(patients, birthDate="17/04/1968")), 400),
        (_parameters(_patient_to_match(patients, gender="F")), 400),
        (
            _parameters(
                _patient_to_match(patients, identifier=[{"system": INS_SYSTEM, "value": "123"}])
            ),
            400,
        ),
        (_parameters(good, count=0), 400),
        (_parameters(good, only_certain="yes"), 400),
        ({"resourceType": "Parameters", "parameter": [{"name": "foo", "valueString": "x"}]}, 400),
        ("{not json", 400),
    ]
    for body, status in cases:
        response = patients.post("/Patient/$match", body)
        assert response.status_code == status, (body, response.text)
        OperationOutcome.model_validate(response.json())
    wrong_type = patients.post(
        "/Patient/$match", _parameters(good), headers={"Content-Type": "text/plain"}
    )
    assert wrong_type.status_code == 415
    by_get = patients.get("/Patient/$match")
    assert by_get.status_code == 405
    assert by_get.json()["resourceType"] == "OperationOutcome"


# --- access --------------------------------------------------------------------------------


def test_scopes_and_the_access_decision(patients: PatientServer) -> None:
    anonymous = httpx.get(f"{patients.base}/fhir/Patient/{patients.ids['A']}")
    assert anonymous.status_code == 401
    directory_only = system_token(patients.base, patients.platform, "system/Practitioner.rs")
    for path, params in (
        (f"/Patient/{patients.ids['A']}", {}),
        ("/Patient", {"family": patients.names.family}),
        ("/Patient/$ihe-pix", {"sourceIdentifier": f"{CHU_SYSTEM}|IPP-A1"}),
    ):
        refused = patients.get(path, token=directory_only, params=params)
        assert refused.status_code == 403, path
        assert refused.json()["issue"][0]["code"] == "forbidden"
    refused_match = patients.post(
        "/Patient/$match", _parameters(_patient_to_match(patients)), token=directory_only
    )
    assert refused_match.status_code == 403

    with patients.platform.read_sessions() as session:
        chu = session.scalars(select(Establishment).where(Establishment.code == "CHU-TEST")).one()
    physician = _account_token(patients.platform, Profile.hospital_physician, chu)
    read = patients.get(f"/Patient/{patients.ids['A']}", token=physician)
    assert read.status_code == 404
    assert read.json()["resourceType"] == "OperationOutcome"
    denial = patients.audit("access.identity.read")
    assert (denial.outcome, denial.entity_type, denial.entity_id) == (
        "denied",
        "Patient",
        patients.ids["A"],
    )
    for path, params in (
        ("/Patient", {"family": patients.names.family}),
        ("/Patient/$ihe-pix", {"sourceIdentifier": f"{CHU_SYSTEM}|IPP-A1"}),
    ):
        assert patients.get(path, token=physician, params=params).status_code == 404, path
    assert patients.audit("access.identity.read").outcome == "denied"


def test_an_identity_vigilance_officer_reads_patients(patients: PatientServer) -> None:
    with patients.platform.read_sessions() as session:
        chu = session.scalars(select(Establishment).where(Establishment.code == "CHU-TEST")).one()
    officer = _account_token(patients.platform, Profile.identity_vigilance, chu)
    allowed = patients.get(f"/Patient/{patients.ids['A']}", token=officer)
    assert allowed.status_code == 200
    assert patients.audit("patient.read").basis == "identity_vigilance"


def test_capability_statement_lists_patient(patients: PatientServer) -> None:
    statement = httpx.get(f"{patients.base}/fhir/metadata").json()
    CapabilityStatement.model_validate(statement)
    resources = {r["type"]: r for r in statement["rest"][0]["resource"]}
    assert {"Practitioner", "Organization", "PractitionerRole", "Patient"} <= set(resources)
    patient = resources["Patient"]
    names = {p["name"] for p in patient["searchParam"]}
    assert {
        "_id",
        "identifier",
        "family",
        "given",
        "birthdate",
        "gender",
        "address-postalcode",
        "active",
    } <= names
    assert {o["name"] for o in patient["operation"]} == {"match", "ihe-pix"}
    assert "operation" not in resources["Practitioner"]
