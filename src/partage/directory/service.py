"""Reads of the directory: searches (shared by the FHIR API and the portal) and lookups.

Names are searched folded (upper case, no accents) and by prefix, from the indexes the
importers fill: "lefevre" finds "LEFÈVRE", "jean" finds "JEAN-PIERRE".
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, SQLColumnExpression, and_, exists, false, func, or_, select
from sqlalchemy.orm import Session

from partage.directory.models import DirectoryImport, Organization, Practitioner, PractitionerRole
from partage.directory.rpps import fold
from partage.search import (
    Criterion,
    InvalidSearch,
    Parameter,
    SearchSpec,
    any_of,
    parse_boolean,
    prefix_condition,
    split_token,
)

# Identifier and code systems (FR Core, ANS nomenclatures).
IDNPS_OID = "1.2.250.1.71.4.2.1"  # national id of a professional: "8"+RPPS, "0"+ADELI
IDNPS_SYSTEM = f"urn:oid:{IDNPS_OID}"
RPPS_SYSTEM = "https://rpps.esante.gouv.fr"
IDNST_OID = "1.2.250.1.71.4.2.2"  # national id of a structure: "1"+FINESS, "3"+SIRET
IDNST_SYSTEM = f"urn:oid:{IDNST_OID}"
FINESS_SYSTEM = "https://finess.esante.gouv.fr"
SIRET_SYSTEM = "https://sirene.fr"
PROFESSION_SYSTEM = (
    "https://mos.esante.gouv.fr/NOS/TRE_G15-ProfessionSante/FHIR/TRE-G15-ProfessionSante"
)
SPECIALTY_SYSTEM = (
    "https://mos.esante.gouv.fr/NOS/TRE_R38-SpecialiteOrdinale/FHIR/TRE-R38-SpecialiteOrdinale"
)
STRUCTURE_TYPE_SYSTEM = (
    "https://mos.esante.gouv.fr/NOS/TRE_R66-CategorieEtablissement/FHIR/"
    "TRE-R66-CategorieEtablissement"
)

_STRING_MODIFIERS = frozenset({"exact", "contains"})


# --- condition builders -------------------------------------------------------------------


def _folded_values(criterion: Criterion) -> list[str]:
    values = [fold(v) for v in criterion.values]
    if not all(values):
        raise InvalidSearch(f"the search parameter '{criterion.name}' has an empty value")
    return values


def _string_on(
    criterion: Criterion,
    folded: SQLColumnExpression[str | None],
    raw: SQLColumnExpression[str | None],
) -> ColumnElement[bool]:
    """FHIR string search: prefix by default, `:contains`, `:exact` (case and accents)."""
    if criterion.modifier == "exact":
        return raw.in_(criterion.values)
    values = _folded_values(criterion)
    if criterion.modifier == "contains":
        return any_of([folded.contains(v, autoescape=True) for v in values])
    return any_of([prefix_condition(folded, v) for v in values])


def _ids(criterion: Criterion) -> list[uuid.UUID]:
    ids = []
    for value in criterion.values:
        try:
            ids.append(uuid.UUID(value.rsplit("/", 1)[-1]))
        except ValueError:
            continue  # an id that cannot exist matches nothing
    return ids


def _id_condition(column: SQLColumnExpression[uuid.UUID | None]) -> Any:
    def build(criterion: Criterion) -> ColumnElement[bool]:
        ids = _ids(criterion)
        return column.in_(ids) if ids else false()

    return build


def _token_in(column: SQLColumnExpression[str | None], system: str) -> Any:
    def build(criterion: Criterion) -> ColumnElement[bool]:
        codes = []
        for value in criterion.values:
            given_system, code = split_token(value)
            if given_system in (None, system) and code:
                codes.append(code)
        return column.in_(codes) if codes else false()

    return build


def _practitioner_name(criterion: Criterion) -> ColumnElement[bool]:
    family, given = Practitioner.family_name_folded, Practitioner.given_name_folded
    if criterion.modifier is not None:
        return or_(
            _string_on(criterion, family, Practitioner.family_name),
            _string_on(criterion, given, Practitioner.given_name),
        )
    alternatives = []
    for value in _folded_values(criterion):
        words = value.split()
        # "le gall" is one family name; "marie lefevre" is a given and a family name.
        whole = or_(prefix_condition(family, value), prefix_condition(given, value))
        if len(words) > 1:
            each = and_(
                *(or_(prefix_condition(family, w), prefix_condition(given, w)) for w in words)
            )
            whole = or_(whole, each)
        alternatives.append(whole)
    return any_of(alternatives)


def _practitioner_identifier(criterion: Criterion) -> ColumnElement[bool]:
    national_ids: list[str] = []
    for value in criterion.values:
        system, code = split_token(value)
        if system == IDNPS_SYSTEM:
            national_ids.append(code)
        elif system == RPPS_SYSTEM:
            national_ids.append("8" + code)
        elif system is None:
            national_ids += [code, "8" + code, "0" + code]
    column = Practitioner.national_id
    return column.in_(national_ids) if national_ids else false()


def _with_role(condition: ColumnElement[bool]) -> ColumnElement[bool]:
    return exists().where(PractitionerRole.practitioner_id == Practitioner.id, condition)


def _role_city(criterion: Criterion) -> ColumnElement[bool]:
    return _string_on(criterion, PractitionerRole.city_folded, PractitionerRole.city)


def _role_postal_code(criterion: Criterion) -> ColumnElement[bool]:
    column = PractitionerRole.postal_code
    return any_of([prefix_condition(column, v.strip()) for v in criterion.values])


_role_profession = _token_in(PractitionerRole.profession_code, PROFESSION_SYSTEM)
_role_specialty = _token_in(PractitionerRole.specialty_code, SPECIALTY_SYSTEM)


def _active(column: SQLColumnExpression[bool]) -> Any:
    def build(criterion: Criterion) -> ColumnElement[bool]:
        return column.is_(parse_boolean(criterion))

    return build


def _organization_identifier(criterion: Criterion) -> ColumnElement[bool]:
    conditions: list[ColumnElement[bool]] = []
    for value in criterion.values:
        system, code = split_token(value)
        finess = or_(Organization.finess_et == code, Organization.finess_ej == code)
        if system == FINESS_SYSTEM:
            conditions.append(finess)
        elif system == SIRET_SYSTEM:
            conditions.append(Organization.siret == code)
        elif system == IDNST_SYSTEM and code[:1] == "1":
            rest = code[1:]
            conditions.append(or_(Organization.finess_et == rest, Organization.finess_ej == rest))
        elif system == IDNST_SYSTEM and code[:1] == "3":
            conditions.append(Organization.siret == code[1:])
        elif system is None:
            conditions += [finess, Organization.siret == code]
    return any_of(conditions) if conditions else false()


def _organization_postal_code(criterion: Criterion) -> ColumnElement[bool]:
    column = Organization.postal_code
    return any_of([prefix_condition(column, v.strip()) for v in criterion.values])


def _role_organization(criterion: Criterion) -> ColumnElement[bool]:
    ids = _ids(criterion)
    if not ids:
        return false()
    column = PractitionerRole.organization_id
    return or_(
        column.in_(ids), column.in_(select(Organization.id).where(Organization.site_id.in_(ids)))
    )


def _string(
    name: str,
    description: str,
    folded: SQLColumnExpression[str | None],
    raw: SQLColumnExpression[str | None],
) -> Parameter:
    return Parameter(
        name, "string", description, lambda c: _string_on(c, folded, raw), _STRING_MODIFIERS
    )


# --- what can be searched -----------------------------------------------------------------

PRACTITIONERS = SearchSpec(
    model=Practitioner,
    parameters={
        p.name: p
        for p in (
            Parameter("_id", "token", "Logical id", _id_condition(Practitioner.id)),
            Parameter(
                "identifier",
                "token",
                f"National id: {IDNPS_SYSTEM}|8… or {RPPS_SYSTEM}|RPPS, or the bare number",
                _practitioner_identifier,
            ),
            Parameter(
                "name",
                "string",
                "Family or given name, accent- and case-insensitive prefix",
                _practitioner_name,
                _STRING_MODIFIERS,
            ),
            _string(
                "family",
                "Family (practice) name",
                Practitioner.family_name_folded,
                Practitioner.family_name,
            ),
            _string(
                "given",
                "Given name",
                Practitioner.given_name_folded,
                Practitioner.given_name,
            ),
            Parameter("active", "token", "Has an open activity", _active(Practitioner.active)),
            Parameter(
                "address-city",
                "string",
                "City of one of the professional's practice sites",
                lambda c: _with_role(_role_city(c)),
                _STRING_MODIFIERS,
            ),
            Parameter(
                "address-postalcode",
                "string",
                "Postal code (prefix) of one of the practice sites",
                lambda c: _with_role(_role_postal_code(c)),
            ),
            Parameter(
                "role",
                "token",
                "Profession code (TRE_G15) of one of the activities",
                lambda c: _with_role(_role_profession(c)),
            ),
            Parameter(
                "specialty",
                "token",
                "Specialty code (TRE_R38) of one of the activities",
                lambda c: _with_role(_role_specialty(c)),
            ),
        )
    },
    order=(
        Practitioner.family_name_folded,
        func.coalesce(Practitioner.given_name_folded, ""),
        Practitioner.id,
    ),
)

ORGANIZATIONS = SearchSpec(
    model=Organization,
    parameters={
        p.name: p
        for p in (
            Parameter("_id", "token", "Logical id", _id_condition(Organization.id)),
            Parameter(
                "identifier",
                "token",
                f"FINESS ({FINESS_SYSTEM}), SIRET ({SIRET_SYSTEM}) or {IDNST_SYSTEM}",
                _organization_identifier,
            ),
            _string("name", "Name", Organization.name_folded, Organization.name),
            _string("address-city", "City", Organization.city_folded, Organization.city),
            Parameter(
                "address-postalcode", "string", "Postal code (prefix)", _organization_postal_code
            ),
            Parameter(
                "type",
                "token",
                "FINESS category code",
                _token_in(Organization.category_code, STRUCTURE_TYPE_SYSTEM),
            ),
            Parameter(
                "partof",
                "reference",
                "The legal entity a site belongs to",
                _id_condition(Organization.parent_id),
            ),
            Parameter("active", "token", "Open", _active(Organization.active)),
        )
    },
    order=(Organization.name_folded, Organization.id),
    # A practice the RPPS extract attaches to a FINESS site is that site: one result, not two.
    always=(Organization.site_id.is_(None),),
)

PRACTITIONER_ROLES = SearchSpec(
    model=PractitionerRole,
    parameters={
        p.name: p
        for p in (
            Parameter("_id", "token", "Logical id", _id_condition(PractitionerRole.id)),
            Parameter(
                "practitioner",
                "reference",
                "The professional",
                _id_condition(PractitionerRole.practitioner_id),
            ),
            Parameter(
                "organization",
                "reference",
                "The structure (a FINESS site also finds the practices attached to it)",
                _role_organization,
            ),
            Parameter("role", "token", "Profession code (TRE_G15)", _role_profession),
            Parameter("specialty", "token", "Specialty code (TRE_R38)", _role_specialty),
            Parameter("active", "token", "Open activity", _active(PractitionerRole.active)),
            Parameter("address-city", "string", "City of the site", _role_city, _STRING_MODIFIERS),
            Parameter("address-postalcode", "string", "Postal code (prefix)", _role_postal_code),
        )
    },
    order=(PractitionerRole.id,),
)


# --- lookups ------------------------------------------------------------------------------


def get_practitioner(session: Session, *, practitioner_id: uuid.UUID) -> Practitioner | None:
    return session.get(Practitioner, practitioner_id)


def get_organization(session: Session, *, organization_id: uuid.UUID) -> Organization | None:
    return session.get(Organization, organization_id)


def get_practitioner_role(session: Session, *, role_id: uuid.UUID) -> PractitionerRole | None:
    return session.get(PractitionerRole, role_id)


def practitioner_by_national_id(session: Session, *, national_id: str) -> Practitioner | None:
    return session.scalar(select(Practitioner).where(Practitioner.national_id == national_id))


def practitioners_by_id(
    session: Session, *, ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, Practitioner]:
    if not ids:
        return {}
    found = session.scalars(select(Practitioner).where(Practitioner.id.in_(set(ids))))
    return {p.id: p for p in found}


def organizations_by_id(
    session: Session, *, ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, Organization]:
    if not ids:
        return {}
    found = session.scalars(select(Organization).where(Organization.id.in_(set(ids))))
    return {o.id: o for o in found}


def roles_of_practitioner(
    session: Session, *, practitioner_id: uuid.UUID, include_closed: bool = True
) -> list[PractitionerRole]:
    statement = select(PractitionerRole).where(PractitionerRole.practitioner_id == practitioner_id)
    if not include_closed:
        statement = statement.where(PractitionerRole.active.is_(True))
    return list(
        session.scalars(
            statement.order_by(PractitionerRole.active.desc(), PractitionerRole.valid_from)
        )
    )


def sites_of_organization(session: Session, *, organization_id: uuid.UUID) -> list[Organization]:
    statement = (
        select(Organization)
        .where(Organization.parent_id == organization_id)
        .order_by(Organization.active.desc(), Organization.name_folded)
    )
    return list(session.scalars(statement))


def list_imports(session: Session, *, limit: int = 50) -> list[DirectoryImport]:
    statement = select(DirectoryImport).order_by(DirectoryImport.started_at.desc()).limit(limit)
    return list(session.scalars(statement))


def get_import(session: Session, *, import_id: uuid.UUID) -> DirectoryImport | None:
    return session.get(DirectoryImport, import_id)


def distinct_professions(session: Session) -> list[tuple[str, str]]:
    """(code, label) of the professions the directory holds, for search filters."""
    statement = (
        select(PractitionerRole.profession_code, func.max(PractitionerRole.profession_label))
        .group_by(PractitionerRole.profession_code)
        .order_by(PractitionerRole.profession_code)
    )
    return [(code, label or code) for code, label in session.execute(statement)]


def distinct_specialties(session: Session) -> list[tuple[str, str]]:
    statement = (
        select(PractitionerRole.specialty_code, func.max(PractitionerRole.specialty_label))
        .where(PractitionerRole.specialty_code.is_not(None))
        .group_by(PractitionerRole.specialty_code)
        .order_by(func.max(PractitionerRole.specialty_label))
    )
    return [(code, label or code) for code, label in session.execute(statement) if code]
