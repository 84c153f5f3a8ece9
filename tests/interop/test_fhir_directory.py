"""The directory through the FHIR API, as a real client (fhirpy, over a real socket) uses it:
identifiers, accent-insensitive names, paging, includes, and OperationOutcomes."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.organization import Organization as FhirOrganization
from fhir.resources.R4B.practitioner import Practitioner as FhirPractitioner
from fhir.resources.R4B.practitionerrole import PractitionerRole as FhirPractitionerRole
from fhirpy import SyncFHIRClient

from partage.app import create_app
from partage.directory import finess, rpps
from partage.platform import Platform
from tests.conftest import build_platform, free_port, serving
from tests.directory.extracts import import_finess_rows, import_rpps_rows, rpps_row, site_number
from tests.interop.tokens import system_token

RPPS_SYSTEM = "https://rpps.esante.gouv.fr"
IDNPS_SYSTEM = "urn:oid:1.2.250.1.71.4.2.1"
FINESS_SYSTEM = "https://finess.esante.gouv.fr"
SYNTHETIC_PROFESSIONALS = 240


@dataclass
class DirectoryServer:
    base: str
    token: str
    platform: Platform
    chu_site: str

    def fhir(self, token: str | None = None) -> SyncFHIRClient:
        return SyncFHIRClient(f"{self.base}/fhir", authorization=f"Bearer {token or self.token}")

    def get(self, path: str, token: str | None = None, **kwargs: object) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token or self.token}"}
        headers.update(kwargs.pop("headers", {}))  # type: ignore[arg-type]
        return httpx.get(f"{self.base}/fhir{path}", headers=headers, **kwargs)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def directory_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DirectoryServer]:
    port = free_port()
    platform, database = build_platform(tmp_path_factory.mktemp("fhir-directory"), port)
    sites = list(finess.synthetic_rows(5))
    chu_site = site_number(sites[0])
    import_finess_rows(platform, sites)
    rows = [
        rpps_row("10000000001", "LEFÈVRE", "Marie"),
        rpps_row("10000000002", "LEFEBVRE", "Jean-Pierre", specialty=("SM02", "Cardiologie")),
        # One professional on two sites: a practice and the CHU (by its FINESS site number).
        rpps_row("10000000003", "LE GALL", "Anaïs", structure="C99000000002"),
        rpps_row(
            "10000000003",
            "LE GALL",
            "Anaïs",
            structure="C99000000003",
            finess_site=chu_site,
            city=("86100", "86066", "Châtellerault"),
        ),
        rpps_row(
            "10000000004",
            "DURAND",
            "Hélène",
            profession=("60", "Infirmier"),
            specialty=("", ""),
            structure="C99000000004",
        ),
        *rpps.synthetic_rows(SYNTHETIC_PROFESSIONALS, seed=7),
    ]
    import_rpps_rows(platform, rows, "rpps.txt")
    app = create_app(platform.settings, platform=platform)
    with serving(app, port) as base:
        token = system_token(
            base,
            platform,
            "system/Practitioner.rs system/Organization.rs system/PractitionerRole.rs",
        )
        yield DirectoryServer(base, token, platform, chu_site)
    platform.close()
    database.drop()


def test_a_fhir_client_finds_a_practitioner_by_rpps_id(directory_server: DirectoryServer) -> None:
    client = directory_server.fhir()
    found = client.resources("Practitioner").search(identifier=f"{RPPS_SYSTEM}|10000000001")
    practitioners = found.fetch()
    assert len(practitioners) == 1
    assert practitioners[0]["name"][0]["family"] == "LEFÈVRE"
    by_idnps = client.resources("Practitioner").search(identifier=f"{IDNPS_SYSTEM}|810000000001")
    assert [p.id for p in by_idnps.fetch()] == [practitioners[0].id]
    FhirPractitioner.model_validate(practitioners[0].serialize())


def test_a_misspelt_accent_finds_the_name(directory_server: DirectoryServer) -> None:
    client = directory_server.fhir()
    for spelling in ("lefevre", "LEFEVRE", "Lefèvre", "lefév"):
        names = {
            p["name"][0]["family"]
            for p in client.resources("Practitioner").search(name=spelling).fetch_all()
        }
        assert "LEFÈVRE" in names, spelling
        assert "LEFEBVRE" not in names, spelling
    given = client.resources("Practitioner").search(given="jean").fetch_all()
    assert any(p["name"][0]["given"] == ["Jean-Pierre"] for p in given)
    compound = client.resources("Practitioner").search(family="le gall").fetch_all()
    assert "Anaïs" in {p["name"][0]["given"][0] for p in compound}
    assert {p["name"][0]["family"] for p in compound} == {"LE GALL"}
    both = client.resources("Practitioner").search(name="marie lefevre").fetch_all()
    assert [(p["name"][0]["family"], p["name"][0]["given"]) for p in both] == [
        ("LEFÈVRE", ["Marie"])
    ]
    exact = client.resources("Practitioner").search(**{"family:exact": "LEFEVRE"}).fetch_all()
    assert exact == []


def test_paging_follows_stable_next_links(directory_server: DirectoryServer) -> None:
    client = directory_server.fhir()
    search = client.resources("Practitioner").search(active="true").limit(17)
    total = search.count()
    ids = [p.id for p in search.fetch_all()]
    assert len(ids) == total == SYNTHETIC_PROFESSIONALS + 4
    assert len(set(ids)) == len(ids)
    first = directory_server.get("/Practitioner", params={"_count": "17"}).json()
    assert "total" not in first or first["total"] == total
    next_url = next(link["url"] for link in first["link"] if link["relation"] == "next")
    headers = {"Authorization": f"Bearer {directory_server.token}"}
    page_two = httpx.get(next_url, headers=headers).json()
    again = httpx.get(next_url, headers=headers).json()
    assert [e["resource"]["id"] for e in page_two["entry"]] == [
        e["resource"]["id"] for e in again["entry"]
    ]
    assert {e["resource"]["id"] for e in page_two["entry"]}.isdisjoint(
        {e["resource"]["id"] for e in first["entry"]}
    )
    Bundle.model_validate(page_two)


def test_include_practitioner_and_organization(directory_server: DirectoryServer) -> None:
    practitioner = (
        directory_server.fhir()
        .resources("Practitioner")
        .search(identifier=f"{RPPS_SYSTEM}|10000000003")
        .get()
    )
    bundle = directory_server.get(
        "/PractitionerRole",
        params=[
            ("practitioner", f"Practitioner/{practitioner.id}"),
            ("_include", "PractitionerRole:practitioner"),
            ("_include", "PractitionerRole:organization"),
        ],
    ).json()
    Bundle.model_validate(bundle)
    modes = [(e["resource"]["resourceType"], e["search"]["mode"]) for e in bundle["entry"]]
    assert modes.count(("PractitionerRole", "match")) == 2
    assert modes.count(("Practitioner", "include")) == 1
    assert modes.count(("Organization", "include")) == 2
    for entry in bundle["entry"]:
        resource = entry["resource"]
        if resource["resourceType"] == "PractitionerRole":
            FhirPractitionerRole.model_validate(resource)
            assert resource["practitioner"]["reference"] == f"Practitioner/{practitioner.id}"
        elif resource["resourceType"] == "Organization":
            FhirOrganization.model_validate(resource)


def test_roles_by_specialty_and_city(directory_server: DirectoryServer) -> None:
    roles = (
        directory_server.fhir()
        .resources("PractitionerRole")
        .search(specialty="SM02", **{"address-city": "poitiers"})
        .fetch_all()
    )
    assert roles
    for role in roles:
        assert role["specialty"][0]["coding"][0]["code"] == "SM02"
    nurses = (
        directory_server.fhir()
        .resources("Practitioner")
        .search(role="60", name="durand")
        .fetch_all()
    )
    assert [p["name"][0]["given"] for p in nurses] == [["Hélène"]]


def test_organizations_by_finess_and_their_professionals(
    directory_server: DirectoryServer,
) -> None:
    client = directory_server.fhir()
    site = (
        client.resources("Organization")
        .search(identifier=f"{FINESS_SYSTEM}|{directory_server.chu_site}")
        .get()
    )
    FhirOrganization.model_validate(site.serialize())
    city = site["address"][0]["city"]
    in_city = client.resources("Organization").search(**{"address-city": city}).fetch_all()
    assert site.id in {o.id for o in in_city}
    # The practice the RPPS extract attaches to the CHU's FINESS site is the CHU's.
    roles = client.resources("PractitionerRole").search(organization=site.id).fetch_all()
    assert "Anaïs LE GALL" in [r["practitioner"]["display"] for r in roles]
    assert {r["organization"]["reference"] for r in roles} == {f"Organization/{site.id}"}


def test_read_and_not_found(directory_server: DirectoryServer) -> None:
    practitioner = (
        directory_server.fhir().resources("Practitioner").search(identifier="10000000001").get()
    )
    read = directory_server.get(f"/Practitioner/{practitioner.id}")
    assert read.status_code == 200
    assert read.headers["content-type"].startswith("application/fhir+json")
    assert read.json()["id"] == practitioner.id
    for missing in ("/Practitioner/00000000-0000-0000-0000-000000000000", "/Practitioner/x"):
        response = directory_server.get(missing)
        assert response.status_code == 404
        assert response.json()["resourceType"] == "OperationOutcome"
    unknown_type = directory_server.get("/Spaceship")
    assert unknown_type.status_code == 404
    assert unknown_type.json()["issue"][0]["code"] == "not-supported"


def test_unknown_parameters_are_errors_unless_lenient(directory_server: DirectoryServer) -> None:
    response = directory_server.get("/Practitioner", params={"familly": "martin"})
    assert response.status_code == 400
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert "familly" in outcome["issue"][0]["diagnostics"]
    lenient = directory_server.get(
        "/Practitioner",
        params={"familly": "martin", "_count": "1"},
        headers={"Prefer": "handling=lenient"},
    )
    assert lenient.status_code == 200
    outcomes = [e for e in lenient.json()["entry"] if e["search"]["mode"] == "outcome"]
    assert outcomes and "familly" in outcomes[0]["resource"]["issue"][0]["diagnostics"]
    for params in (
        {"_count": "-1"},
        {"_page": "not-a-page"},
        {"active": "maybe"},
        {"name:sounds-like": "x"},
        {"_include": "Practitioner:organization"},
        {"name": ""},
    ):
        bad = directory_server.get("/Practitioner", params=params)
        assert bad.status_code == 400, params
        assert bad.json()["resourceType"] == "OperationOutcome"


def test_search_by_post(directory_server: DirectoryServer) -> None:
    response = httpx.post(
        f"{directory_server.base}/fhir/Practitioner/_search",
        data={"name": "lefevre"},
        headers={"Authorization": f"Bearer {directory_server.token}"},
    )
    assert response.status_code == 200
    assert any(e["resource"]["name"][0]["family"] == "LEFÈVRE" for e in response.json()["entry"])


def test_tokens_and_scopes(directory_server: DirectoryServer) -> None:
    anonymous = httpx.get(f"{directory_server.base}/fhir/Practitioner")
    assert anonymous.status_code == 401
    assert anonymous.json()["resourceType"] == "OperationOutcome"
    narrow = system_token(
        directory_server.base, directory_server.platform, "system/Organization.rs"
    )
    refused = directory_server.get("/Practitioner", token=narrow)
    assert refused.status_code == 403
    assert refused.json()["issue"][0]["code"] == "forbidden"
    assert directory_server.get("/Organization", token=narrow).status_code == 200


def test_capability_statement(directory_server: DirectoryServer, tmp_path: Path) -> None:
    statement = httpx.get(f"{directory_server.base}/fhir/metadata").json()
    assert statement["resourceType"] == "CapabilityStatement"
    resources = {r["type"]: r for r in statement["rest"][0]["resource"]}
    assert {"Practitioner", "Organization", "PractitionerRole"} <= set(resources)
    names = {p["name"] for p in resources["Practitioner"]["searchParam"]}
    assert {"identifier", "name", "family", "given", "active", "_count"} <= names
    assert "PractitionerRole:practitioner" in resources["PractitionerRole"]["searchInclude"]
