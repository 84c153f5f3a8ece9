"""A territorial person as a FHIR R4 Patient resource (FR Core).

A Patient is a territorial person, not an establishment's record: its id is the person's id
(the territory's identifier), its identifiers are every establishment's IPP for that person
(and the INS once an identity of theirs is qualified), its traits are those of the person's
most reliable identity. One person, one Patient, whichever establishments know them — which
is what PIXm's cross-referencing and PDQm's "one entry per patient" expect of a manager.

The territory's identifier is given under `PERSON_ID_SYSTEM`, an OID of the 2.25 arc derived
from a fixed name (as establishments without a registered OID get theirs, see
`security.actions.domain_oid`): an OID, like every other patient identifier domain a PIX
consumer deals with; fixed, so that it does not change when the server's public address does
(identifiers are stored in other systems for years); the same on every installation, which
is harmless since person ids are random UUIDs. The FHIR logical id is the same value: PIXm's
`[base]|Patient/<id>` form is accepted as a source identifier too.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from partage.identity.ins import INS_NIR_OID, INS_OIDS
from partage.identity.models import LocalIdentity, Person, PersonStatus
from partage.identity.normalize import fold
from partage.identity.traits import IdentityStatus, Sex
from partage.interop.fhir.resources import (
    Rendered,
)
from partage.security.models import Establishment
from partage.security.service import establishments_by_id

# The territory's identifier of a person (see the module docstring).
PERSON_ID_OID = "2.25." + str(uuid.uuid5(uuid.NAMESPACE_OID, "partage:territorial-person").int)
PERSON_ID_SYSTEM = f"urn:oid:{PERSON_ID_OID}"

FR_CORE = "https://hl7.fr/ig/fhir/core/StructureDefinition/"
PATIENT_PROFILE = FR_CORE + "fr-core-patient"
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
FR_CORE_V2_0203 = "https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-v2-0203"
BIRTH_PLACE_URL = "http://hl7.org/fhir/StructureDefinition/patient-birthPlace"
INSEE_CODE_URL = FR_CORE + "fr-core-address-insee-code"
IDENTITY_RELIABILITY_URL = FR_CORE + "fr-core-identity-reliability"
COMMUNE_SYSTEM = "https://mos.esante.gouv.fr/NOS/TRE_R13-CommuneOM/FHIR/TRE-R13-CommuneOM"
INS_SYSTEMS = {f"urn:oid:{oid}": oid for oid in INS_OIDS}

# The identity whose traits a Patient shows: the most reliable, then the latest.
_RELIABILITY = {
    IdentityStatus.qualified.value: 3,
    IdentityStatus.validated.value: 2,
    IdentityStatus.recovered.value: 1,
    IdentityStatus.provisional.value: 0,
}
# FHIR's administrative gender and the index's sex, both ways.
GENDERS = {Sex.male.value: "male", Sex.female.value: "female", Sex.unknown.value: "unknown"}
SEXES = {"male": Sex.male, "female": Sex.female, "unknown": Sex.unknown}


# --- rendering ----------------------------------------------------------------------------


def _coding(system: str, code: str, display: str | None = None) -> dict[str, str]:
    coding = {"system": system, "code": code}
    if display:
        coding["display"] = display
    return coding


def _drop_empty(resource: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in resource.items() if v not in (None, "", [], {})}


def territory_identifier(person_id: uuid.UUID) -> dict[str, Any]:
    """The territory's identifier of a person (FR Core's regional registry id slice)."""
    return {
        "use": "secondary",
        "type": {"coding": [_coding(V2_0203, "RRI", "Regional registry ID")]},
        "system": PERSON_ID_SYSTEM,
        "value": str(person_id),
    }


def local_identifier(identity: LocalIdentity, establishment: Establishment) -> dict[str, Any]:
    """An establishment's IPP; a retired one (merged by the establishment, A40) is `old`."""
    return {
        "use": "usual" if identity.active else "old",
        "type": {"coding": [_coding(V2_0203, "PI", "Patient internal identifier")]},
        "system": f"urn:oid:{establishment.patient_id_oid}",
        "value": identity.local_id,
        "assigner": {"display": establishment.name},
    }


def ins_identifiers(identities: Iterable[LocalIdentity]) -> list[dict[str, Any]]:
    """The INS, only from qualified identities: the only ones whose INS may be shared."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for identity in identities:
        if not (identity.active and identity.ins and identity.status == IdentityStatus.qualified):
            continue
        oid = identity.ins_oid or INS_NIR_OID
        identifier: dict[str, Any] = {"use": "official"}
        if oid in INS_OIDS:
            identifier["type"] = {"coding": [_coding(FR_CORE_V2_0203, INS_OIDS[oid])]}
        identifier |= {"system": f"urn:oid:{oid}", "value": identity.ins}
        found.setdefault((oid, identity.ins), identifier)
    return list(found.values())


def _reference_identity(identities: Sequence[LocalIdentity]) -> LocalIdentity | None:
    active = [i for i in identities if i.active]
    return max(active, key=lambda i: (_RELIABILITY.get(i.status, 0), i.updated_at), default=None)


def _names(identity: LocalIdentity) -> list[dict[str, Any]]:
    official: dict[str, Any] = {"use": "official", "family": identity.birth_family_name}
    if identity.given_names.split():
        official["given"] = identity.given_names.split()
    names = [official]
    used = identity.used_family_name.strip()
    if used and fold(used) != fold(identity.birth_family_name):
        names.append({"use": "usual", "family": used})
    return names


def _birth_place(code: str) -> list[dict[str, Any]]:
    """FR Core birth place: the COG code of the commune (INSEE code extension, TRE_R13) —
    or, born abroad (99xxx), of the country — also given as `district`, where FR Core's
    earlier birth place extension put it."""
    code = code.strip().upper()
    if not code:
        return []
    address: dict[str, Any] = {"district": code}
    if not code.startswith("99"):
        address["extension"] = [
            {"url": INSEE_CODE_URL, "valueCoding": _coding(COMMUNE_SYSTEM, code)}
        ]
    return [{"url": BIRTH_PLACE_URL, "valueAddress": address}]


def _address(identity: LocalIdentity) -> list[dict[str, Any]]:
    address = _drop_empty(
        {
            "use": "home",
            "line": [identity.address] if identity.address.strip() else None,
            "postalCode": identity.postal_code.strip(),
            "city": identity.city.strip(),
        }
    )
    return [address] if len(address) > 1 else []


def _patient(
    person: Person,
    identities: Sequence[LocalIdentity],
    establishments: dict[uuid.UUID, Establishment],
    replaces: Sequence[uuid.UUID],
) -> Rendered:
    reference = _reference_identity(identities)
    identifiers = [territory_identifier(person.id), *ins_identifiers(identities)]
    identifiers += [
        local_identifier(i, establishments[i.establishment_id])
        for i in identities
        if i.establishment_id in establishments
    ]
    updated = max([person.updated_at, *(i.updated_at for i in identities)])
    links = [{"other": {"reference": f"Patient/{other}"}, "type": "replaces"} for other in replaces]
    if person.status == PersonStatus.merged and person.merged_into_id is not None:
        links.insert(
            0, {"other": {"reference": f"Patient/{person.merged_into_id}"}, "type": "replaced-by"}
        )
    resource: dict[str, Any] = {
        "resourceType": "Patient",
        "id": str(person.id),
        "meta": {"lastUpdated": updated.isoformat(), "profile": [PATIENT_PROFILE]},
    }
    if reference is not None:
        resource["extension"] = _birth_place(reference.birth_place_code)
    resource |= {"identifier": identifiers, "active": person.status == PersonStatus.active}
    if reference is not None:
        resource |= {
            "name": _names(reference),
            "telecom": [{"system": "phone", "value": reference.phone}]
            if reference.phone.strip()
            else [],
            "gender": GENDERS.get(reference.sex, "unknown"),
            "birthDate": reference.birth_date.isoformat() if reference.birth_date else None,
            "address": _address(reference),
        }
    resource["link"] = links
    return _drop_empty(resource)


def patient_resources(session: Session, persons: Sequence[Person]) -> list[Rendered]:
    """Persons as FR Core Patients, with three queries per page whatever its size."""
    if not persons:
        return []
    ids = [p.id for p in persons]
    identities: dict[uuid.UUID, list[LocalIdentity]] = defaultdict(list)
    for row in session.scalars(
        select(LocalIdentity)
        .where(LocalIdentity.person_id.in_(ids))
        .order_by(LocalIdentity.created_at, LocalIdentity.id)
    ):
        identities[row.person_id].append(row)
    establishments = establishments_by_id(
        session, (i.establishment_id for rows in identities.values() for i in rows)
    )
    replaces: dict[uuid.UUID, list[uuid.UUID]] = defaultdict(list)
    for absorbed, kept in session.execute(
        select(Person.id, Person.merged_into_id)
        .where(Person.merged_into_id.in_(ids))
        .order_by(Person.id)
    ):
        if kept is not None:
            replaces[kept].append(absorbed)
    return [_patient(p, identities[p.id], establishments, replaces[p.id]) for p in persons]


# --- persons by id ------------------------------------------------------------------------


def read_person(session: Session, person_id: uuid.UUID) -> Person | None:
    return session.get(Person, person_id)


def load_persons(session: Session, ids: Sequence[uuid.UUID]) -> list[Person]:
    """The persons of these ids, in their order (the unknown ones left out)."""
    found = {p.id: p for p in session.scalars(select(Person).where(Person.id.in_(list(ids))))}
    return [found[i] for i in ids if i in found]
