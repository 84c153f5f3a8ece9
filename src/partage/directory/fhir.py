"""The directory as FHIR R4 resources (FR Core profiles): Practitioner, Organization,
PractitionerRole."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.orm import Session

from partage.directory import service
from partage.directory.models import Organization, Practitioner, PractitionerRole
from partage.interop.fhir.resources import Include, Rendered, ResourceType

FR_CORE = "https://hl7.fr/ig/fhir/core/StructureDefinition/"
IDENTIFIER_TYPE_SYSTEM = "https://hl7.fr/ig/fhir/core/CodeSystem/fr-core-cs-v2-0203"
PRACTICE_MODE_SYSTEM = (
    "https://mos.esante.gouv.fr/NOS/TRE_R23-ModeExercice/FHIR/TRE-R23-ModeExercice"
)


def _coding(system: str, code: str | None, display: str | None = None) -> dict[str, Any]:
    coding: dict[str, Any] = {"system": system, "code": code}
    if display:
        coding["display"] = display
    return coding


def _meta(updated_at: Any, profile: str) -> dict[str, Any]:
    return {"lastUpdated": updated_at.isoformat(), "profile": [FR_CORE + profile]}


def _telecom(phone: str | None, email: str | None) -> list[dict[str, str]]:
    telecom = []
    if phone:
        telecom.append({"system": "phone", "value": phone, "use": "work"})
    if email:
        telecom.append({"system": "email", "value": email, "use": "work"})
    return telecom


def _address(line: str | None, postal_code: str | None, city: str | None) -> dict[str, Any]:
    address: dict[str, Any] = {"use": "work", "type": "both", "country": "FR"}
    if line:
        address["line"] = [line]
    if postal_code:
        address["postalCode"] = postal_code
    if city:
        address["city"] = city
    return address


def _identifier(system: str, value: str) -> dict[str, str]:
    return {"use": "official", "system": system, "value": value}


def _concept(system: str, code: str | None, display: str | None) -> dict[str, Any]:
    return {"coding": [_coding(system, code, display)]}


def _drop_empty(resource: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in resource.items() if v not in (None, [], {})}


def practitioner_display(p: Practitioner) -> str:
    return " ".join(part for part in (p.given_name, p.family_name) if part)


def practitioner_resource(p: Practitioner) -> Rendered:
    identifiers: list[dict[str, Any]] = [
        {
            "use": "official",
            "type": {"coding": [_coding(IDENTIFIER_TYPE_SYSTEM, "IDNPS")]},
            "system": service.IDNPS_SYSTEM,
            "value": p.national_id,
        }
    ]
    if p.id_type == "8":
        identifiers.append(
            {
                "use": "official",
                "type": {"coding": [_coding(IDENTIFIER_TYPE_SYSTEM, "RPPS")]},
                "system": service.RPPS_SYSTEM,
                "value": p.local_id,
            }
        )
    name: dict[str, Any] = {"use": "official", "family": p.family_name}
    if p.given_name:
        name["given"] = [p.given_name]
    if p.practice_civility_code == "DR":
        name["prefix"] = ["Dr"]
    return {
        "resourceType": "Practitioner",
        "id": str(p.id),
        "meta": _meta(p.updated_at, "fr-core-practitioner"),
        "identifier": identifiers,
        "active": p.active,
        "name": [name],
    }


def organization_resource(o: Organization) -> Rendered:
    identifiers: list[dict[str, Any]] = []
    finess = o.finess_et or o.finess_ej
    if finess:
        identifiers.append({"use": "official", "system": service.FINESS_SYSTEM, "value": finess})
        identifiers.append(
            {"use": "official", "system": service.IDNST_SYSTEM, "value": "1" + finess}
        )
    if o.siret:
        identifiers.append({"use": "official", "system": service.SIRET_SYSTEM, "value": o.siret})
    resource = {
        "resourceType": "Organization",
        "id": str(o.id),
        "meta": _meta(o.updated_at, "fr-core-organization"),
        "identifier": identifiers,
        "active": o.active,
        "type": [
            {"coding": [_coding(service.STRUCTURE_TYPE_SYSTEM, o.category_code, o.category_label)]}
        ]
        if o.category_code
        else [],
        "name": o.name,
        "telecom": _telecom(o.phone, o.email),
        "address": [_address(o.address_line, o.postal_code, o.city)],
        "partOf": {"reference": f"Organization/{o.parent_id}"} if o.parent_id else None,
    }
    return _drop_empty(resource)


def _role_organization_id(
    role: PractitionerRole, organizations: dict[uuid.UUID, Organization]
) -> uuid.UUID | None:
    """The FINESS site a practice is attached to stands for it, when the directory knows it."""
    if role.organization_id is None:
        return None
    organization = organizations.get(role.organization_id)
    if organization is not None and organization.site_id is not None:
        return organization.site_id
    return role.organization_id


def _role_organizations(
    session: Session, roles: list[PractitionerRole]
) -> dict[uuid.UUID, Organization]:
    """The structures the roles name, and the FINESS sites those are attached to."""
    organizations = service.organizations_by_id(
        session, ids=[r.organization_id for r in roles if r.organization_id]
    )
    sites = service.organizations_by_id(
        session, ids=[o.site_id for o in organizations.values() if o.site_id]
    )
    organizations.update(sites)
    return organizations


def practitioner_role_resources(session: Session, roles: list[PractitionerRole]) -> list[Rendered]:
    practitioners = service.practitioners_by_id(session, ids=[r.practitioner_id for r in roles])
    organizations = _role_organizations(session, roles)
    rendered = []
    for role in roles:
        practitioner = practitioners.get(role.practitioner_id)
        organization_id = _role_organization_id(role, organizations)
        organization = organizations.get(organization_id) if organization_id else None
        codes = [
            {
                "coding": [
                    _coding(service.PROFESSION_SYSTEM, role.profession_code, role.profession_label)
                ]
            }
        ]
        if role.practice_mode_code:
            codes.append(
                {
                    "coding": [
                        _coding(
                            PRACTICE_MODE_SYSTEM, role.practice_mode_code, role.practice_mode_label
                        )
                    ]
                }
            )
        period = {"start": role.valid_from.isoformat()}
        if role.valid_to:
            period["end"] = role.valid_to.isoformat()
        resource = {
            "resourceType": "PractitionerRole",
            "id": str(role.id),
            "meta": _meta(role.updated_at, "fr-core-practitioner-role"),
            "active": role.active,
            "period": period,
            "practitioner": {
                "reference": f"Practitioner/{role.practitioner_id}",
                **({"display": practitioner_display(practitioner)} if practitioner else {}),
            },
            "organization": {
                "reference": f"Organization/{organization_id}",
                **({"display": organization.name} if organization else {}),
            }
            if organization_id
            else None,
            "code": codes,
            "specialty": [
                {
                    "coding": [
                        _coding(service.SPECIALTY_SYSTEM, role.specialty_code, role.specialty_label)
                    ]
                }
            ]
            if role.specialty_code
            else [],
            "telecom": _telecom(role.phone, role.email),
        }
        rendered.append(_drop_empty(resource))
    return rendered


def _included_practitioners(session: Session, roles: list[PractitionerRole]) -> list[Practitioner]:
    found = service.practitioners_by_id(session, ids=[r.practitioner_id for r in roles])
    return list(found.values())


def _included_organizations(session: Session, roles: list[PractitionerRole]) -> list[Organization]:
    organizations = _role_organizations(session, roles)
    wanted = {_role_organization_id(r, organizations) for r in roles}
    return [organizations[i] for i in wanted if i is not None and i in organizations]


def _included_parents(session: Session, organizations: list[Organization]) -> list[Organization]:
    parents = [o.parent_id for o in organizations if o.parent_id]
    return list(service.organizations_by_id(session, ids=parents).values())


RESOURCE_TYPES = (
    ResourceType(
        name="Practitioner",
        profile=FR_CORE + "fr-core-practitioner",
        spec=service.PRACTITIONERS,
        read=lambda session, id_: service.get_practitioner(session, practitioner_id=id_),
        render=lambda session, rows: [practitioner_resource(p) for p in rows],
    ),
    ResourceType(
        name="Organization",
        profile=FR_CORE + "fr-core-organization",
        spec=service.ORGANIZATIONS,
        read=lambda session, id_: service.get_organization(session, organization_id=id_),
        render=lambda session, rows: [organization_resource(o) for o in rows],
        includes=(Include("partof", "Organization", _included_parents),),
    ),
    ResourceType(
        name="PractitionerRole",
        profile=FR_CORE + "fr-core-practitioner-role",
        spec=service.PRACTITIONER_ROLES,
        read=lambda session, id_: service.get_practitioner_role(session, role_id=id_),
        render=practitioner_role_resources,
        includes=(
            Include("practitioner", "Practitioner", _included_practitioners),
            Include("organization", "Organization", _included_organizations),
        ),
    ),
)
