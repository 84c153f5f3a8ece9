"""Directory rows as the portal shows them: names, addresses, telephone numbers and dates
in the reader's language. Pure functions of rows already loaded; no queries here."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from babel.dates import format_date, format_datetime, get_timezone

from partage.directory.models import Organization, Practitioner, PractitionerRole
from partage.directory.rpps import fold

# The extracts and the people reading them are in metropolitan France.
TERRITORY_TIMEZONE = get_timezone("Europe/Paris")
ACTIVITIES_PER_RESULT = 3


@dataclass(frozen=True)
class StructureLink:
    id: uuid.UUID
    name: str

    @property
    def href(self) -> str:
        return f"/annuaire/structures/{self.id}"


@dataclass(frozen=True)
class Phone:
    shown: str
    href: str


@dataclass(frozen=True)
class ActivitySummary:
    profession: str | None
    specialty: str | None
    city: str | None
    structure: StructureLink | None
    active: bool


@dataclass(frozen=True)
class PractitionerResult:
    id: uuid.UUID
    name: str
    active: bool
    activities: list[ActivitySummary]

    @property
    def href(self) -> str:
        return f"/annuaire/professionnels/{self.id}"


@dataclass(frozen=True)
class OrganizationSummary:
    id: uuid.UUID
    name: str
    category: str | None
    finess: str | None
    postal_code: str | None
    city: str | None
    active: bool

    @property
    def href(self) -> str:
        return f"/annuaire/structures/{self.id}"


@dataclass(frozen=True)
class Activity:
    profession: str | None
    specialty: str | None
    practice_mode: str | None
    sector: str | None
    structure: StructureLink | None
    address: list[str]
    phone: Phone | None
    email: str | None
    since: str | None
    closed_on: str | None
    active: bool


@dataclass(frozen=True)
class PractitionerIdentity:
    name: str
    family_name: str
    given_name: str | None
    national_id: str
    # ("RPPS", "10000000001") or ("ADELI", "123456789"): the number people know.
    register: str
    register_number: str
    active: bool


@dataclass(frozen=True)
class OrganizationDetail:
    id: uuid.UUID
    name: str
    finess_site: str | None
    finess_legal_entity: str | None
    siret: str | None
    category: str | None
    category_code: str | None
    address: list[str]
    phone: Phone | None
    email: str | None
    active: bool
    legal_entity: StructureLink | None
    # The FINESS site an RPPS practice is attached to.
    attached_to: StructureLink | None


@dataclass(frozen=True)
class StaffMember:
    practitioner_id: uuid.UUID
    name: str
    profession: str | None
    specialty: str | None
    # Set when the activity is at a practice attached to this structure, not at it directly.
    through: str | None

    @property
    def href(self) -> str:
        return f"/annuaire/professionnels/{self.practitioner_id}"


# --- small pieces --------------------------------------------------------------------------


def person_name(family_name: str, given_name: str | None) -> str:
    """ "LEFÈVRE Marie": family name in capitals as the registers write it, then the given
    name, which some extracts also write in capitals ("JEAN-PIERRE" → "Jean-Pierre")."""
    if not given_name:
        return family_name
    given = given_name.title() if given_name.isupper() else given_name
    return f"{family_name} {given}"


def phone(number: str | None) -> Phone | None:
    if not number:
        return None
    digits = "".join(c for c in number if c.isdigit())
    if len(digits) == 10 and digits.startswith("0"):
        shown = " ".join(digits[i : i + 2] for i in range(0, 10, 2))
        return Phone(shown, f"tel:+33{digits[1:]}")
    return Phone(number, f"tel:{digits}") if digits else None


def address(line: str | None, postal_code: str | None, city: str | None) -> list[str]:
    town = " ".join(part for part in (postal_code, city) if part)
    return [part for part in (line, town) if part]


def long_date(moment: datetime | None, locale: str) -> str | None:
    if moment is None:
        return None
    return format_date(moment.astimezone(TERRITORY_TIMEZONE), format="long", locale=locale)


def date_time(moment: datetime | None, locale: str) -> str | None:
    if moment is None:
        return None
    return format_datetime(moment, format="short", tzinfo=TERRITORY_TIMEZONE, locale=locale)


def structure_of(
    role: PractitionerRole, structures: Mapping[uuid.UUID, Organization]
) -> StructureLink | None:
    """Where the activity takes place; a practice attached to a FINESS site is shown as that
    site when the site is loaded too, as the FHIR API does."""
    if role.organization_id is None:
        return None
    structure = structures.get(role.organization_id)
    if structure is None:
        return None
    if structure.site_id is not None and structure.site_id in structures:
        structure = structures[structure.site_id]
    return StructureLink(structure.id, structure.name)


def site_ids(structures: Iterable[Organization]) -> list[uuid.UUID]:
    """The FINESS sites these practices are attached to (to load them with the practices)."""
    return [s.site_id for s in structures if s.site_id is not None]


# --- rows as the pages show them -----------------------------------------------------------


def practitioner_result(
    practitioner: Practitioner,
    roles: Iterable[PractitionerRole],
    structures: Mapping[uuid.UUID, Organization],
) -> PractitionerResult:
    own = sorted(
        (r for r in roles if r.practitioner_id == practitioner.id),
        key=lambda r: (not r.active, r.valid_from),
    )
    activities = [
        ActivitySummary(
            profession=r.profession_label or r.profession_code,
            specialty=r.specialty_label,
            city=r.city,
            structure=structure_of(r, structures),
            active=r.active,
        )
        for r in own[:ACTIVITIES_PER_RESULT]
    ]
    return PractitionerResult(
        practitioner.id,
        person_name(practitioner.family_name, practitioner.given_name),
        practitioner.active,
        activities,
    )


def organization_summary(organization: Organization) -> OrganizationSummary:
    return OrganizationSummary(
        organization.id,
        organization.name,
        organization.category_label,
        organization.finess_et,
        organization.postal_code,
        organization.city,
        organization.active,
    )


def activity(
    role: PractitionerRole, structures: Mapping[uuid.UUID, Organization], locale: str
) -> Activity:
    return Activity(
        profession=role.profession_label or role.profession_code,
        specialty=role.specialty_label,
        practice_mode=role.practice_mode_label,
        sector=role.sector_label,
        structure=structure_of(role, structures),
        address=address(role.address_line, role.postal_code, role.city),
        phone=phone(role.phone),
        email=role.email,
        since=long_date(role.valid_from, locale),
        closed_on=long_date(role.valid_to, locale) if not role.active else None,
        active=role.active,
    )


def practitioner_identity(practitioner: Practitioner) -> PractitionerIdentity:
    register = "RPPS" if practitioner.id_type == "8" else "ADELI"
    return PractitionerIdentity(
        name=person_name(practitioner.family_name, practitioner.given_name),
        family_name=practitioner.family_name,
        given_name=practitioner.given_name,
        national_id=practitioner.national_id,
        register=register,
        register_number=practitioner.local_id or practitioner.national_id[1:],
        active=practitioner.active,
    )


def organization_detail(
    organization: Organization, related: Mapping[uuid.UUID, Organization]
) -> OrganizationDetail:
    def link(target: uuid.UUID | None) -> StructureLink | None:
        found = related.get(target) if target else None
        return StructureLink(found.id, found.name) if found else None

    return OrganizationDetail(
        id=organization.id,
        name=organization.name,
        finess_site=organization.finess_et,
        finess_legal_entity=organization.finess_ej,
        siret=organization.siret,
        category=organization.category_label,
        category_code=organization.category_code,
        address=address(organization.address_line, organization.postal_code, organization.city),
        phone=phone(organization.phone),
        email=organization.email,
        active=organization.active,
        legal_entity=link(organization.parent_id),
        attached_to=link(organization.site_id),
    )


def staff(
    roles: Iterable[PractitionerRole],
    practitioners: Mapping[uuid.UUID, Practitioner],
    structures: Mapping[uuid.UUID, Organization],
    organization: Organization,
) -> list[StaffMember]:
    members = []
    for role in roles:
        practitioner = practitioners.get(role.practitioner_id)
        if practitioner is None:
            continue
        practice = structures.get(role.organization_id) if role.organization_id else None
        # Named only when it tells something: a practice often bears the site's own name.
        through = practice.name if practice and practice.id != organization.id else None
        if through and fold(through) == organization.name_folded:
            through = None
        members.append(
            StaffMember(
                practitioner.id,
                person_name(practitioner.family_name, practitioner.given_name),
                role.profession_label or role.profession_code,
                role.specialty_label,
                through,
            )
        )
    # Within a page, in the order people look names up.
    return sorted(members, key=lambda m: fold(m.name))
