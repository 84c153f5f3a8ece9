"""The master patient index as FHIR R4: the Patient resource (FR Core), its search (IHE PDQm
ITI-78), `$match` (PDQm ITI-119) and `$ihe-pix` (PIXm ITI-83).

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

Search: a person matches when each criterion is met by one of its identities (the person's
traits are the union of what its establishments know: a used name from one hospital and a
birth date from another find them). Criteria on identities are `person.id IN (identities
matching)`, answered from the identities' indexes; pages are keyset pages on the person id
(`partage.search.run_search` on `Person`), one entry per person whatever number of its
identities match.
"""

from __future__ import annotations

import calendar
import re
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, false, or_, select
from sqlalchemy.orm import Session

from partage.access.decision import Action
from partage.audit.actions import record
from partage.identity.decide import PairJudgement, Verdict, judge, person_standing
from partage.identity.features import Features
from partage.identity.ins import INS_NIR_OID, INS_OIDS, InvalidIns, normalize_ins, validate_ins
from partage.identity.model import MatchModel
from partage.identity.models import LocalIdentity, Person, PersonStatus
from partage.identity.normalize import fold, phone_number
from partage.identity.service import MODEL_CACHE
from partage.identity.store import candidates, features_of, frequencies_for
from partage.identity.traits import IdentityStatus, IdentityTraits, Sex
from partage.interop.fhir.outcome import FhirError, operation_outcome
from partage.interop.fhir.resources import (
    Audit,
    Operation,
    OperationCall,
    OperationResult,
    Rendered,
    ResourceType,
)
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
from partage.security.models import Establishment

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
MATCH_GRADE_URL = "http://hl7.org/fhir/StructureDefinition/match-grade"
GENDER_SYSTEM = "http://hl7.org/fhir/administrative-gender"
MATCH_DEFINITION = "https://profiles.ihe.net/ITI/PDQm/OperationDefinition/PDQmMatch"
PIX_DEFINITION = "https://profiles.ihe.net/ITI/PIXm/OperationDefinition/IHE.PIXm.pix"
INS_SYSTEMS = {f"urn:oid:{oid}": oid for oid in INS_OIDS}

# The identity whose traits a Patient shows: the most reliable, then the latest.
_RELIABILITY = {
    IdentityStatus.qualified.value: 3,
    IdentityStatus.validated.value: 2,
    IdentityStatus.recovered.value: 1,
    IdentityStatus.provisional.value: 0,
}
_GENDERS = {Sex.male.value: "male", Sex.female.value: "female", Sex.unknown.value: "unknown"}
_SEXES = {"male": Sex.male, "female": Sex.female, "unknown": Sex.unknown}
_STRING_MODIFIERS = frozenset({"exact", "contains"})
_OID = re.compile(r"^[0-2](?:\.(?:0|[1-9][0-9]*))+$")


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
            "gender": _GENDERS.get(reference.sex, "unknown"),
            "birthDate": reference.birth_date.isoformat() if reference.birth_date else None,
            "address": _address(reference),
        }
    resource["link"] = links
    return _drop_empty(resource)


def _establishments(session: Session, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, Establishment]:
    wanted = set(ids)
    if not wanted:
        return {}
    rows = session.scalars(select(Establishment).where(Establishment.id.in_(wanted)))
    return {e.id: e for e in rows}


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
    establishments = _establishments(
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


def _read(session: Session, person_id: uuid.UUID) -> Person | None:
    return session.get(Person, person_id)


# --- search (PDQm ITI-78) -----------------------------------------------------------------


def _on_identities(*conditions: ColumnElement[bool], active: bool = True) -> ColumnElement[bool]:
    """The persons one of whose identities meets the conditions, for conditions an index
    answers (names, identifiers, phone): the matching identities are found first."""
    where = [LocalIdentity.active, *conditions] if active else list(conditions)
    return Person.id.in_(select(LocalIdentity.person_id).where(*where))


def _with_identity(condition: ColumnElement[bool]) -> ColumnElement[bool]:
    """The same, for conditions no index answers (birth date, sex, postal code, given
    names): checked on each person the other criteria found, through the identities' index
    by person, rather than by reading every identity of the territory."""
    return exists().where(LocalIdentity.person_id == Person.id, LocalIdentity.active, condition)


def _as_uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value.rsplit("/", 1)[-1])
    except ValueError:
        return None


def _id(criterion: Criterion) -> ColumnElement[bool]:
    ids = [i for i in (_as_uuid(v) for v in criterion.values) if i is not None]
    return Person.id.in_(ids) if ids else false()


def _folded(criterion: Criterion) -> list[str]:
    values = [fold(v) for v in criterion.values]
    if not all(values):
        raise InvalidSearch(f"the search parameter '{criterion.name}' has no letters")
    return values


def _family(criterion: Criterion) -> ColumnElement[bool]:
    """The birth name or the used name, folded (case and accents ignored), by prefix."""
    birth, used = LocalIdentity.family_folded, LocalIdentity.used_folded
    if criterion.modifier == "exact":
        values = list(criterion.values)
        condition = or_(
            LocalIdentity.birth_family_name.in_(values), LocalIdentity.used_family_name.in_(values)
        )
    elif criterion.modifier == "contains":
        condition = any_of(
            [
                or_(birth.contains(v, autoescape=True), used.contains(v, autoescape=True))
                for v in _folded(criterion)
            ]
        )
    else:
        condition = any_of(
            [or_(prefix_condition(birth, v), prefix_condition(used, v)) for v in _folded(criterion)]
        )
    return _on_identities(condition)


def _given(criterion: Criterion) -> ColumnElement[bool]:
    """Any of the given names: the list starts with the value, or one of its words does."""
    column = LocalIdentity.given_folded
    alternatives: list[ColumnElement[bool]] = []
    if criterion.modifier == "exact":
        raw = LocalIdentity.given_names
        for v in criterion.values:
            alternatives += [
                raw == v,
                raw.startswith(v + " ", autoescape=True),
                raw.endswith(" " + v, autoescape=True),
                raw.contains(" " + v + " ", autoescape=True),
            ]
    elif criterion.modifier == "contains":
        alternatives = [column.contains(v, autoescape=True) for v in _folded(criterion)]
    else:
        for v in _folded(criterion):
            alternatives += [prefix_condition(column, v), column.contains(" " + v, autoescape=True)]
    return _with_identity(any_of(alternatives))


_DATE = re.compile(r"^(eq|ne|gt|lt|ge|le|sa|eb|ap)?(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?$")


def date_range(value: str) -> tuple[str, date, date]:
    """A FHIR date search value: its prefix and the first and last day it covers."""
    match = _DATE.match(value.strip())
    if match is None:
        raise InvalidSearch(
            f"'{value}' is not a date (YYYY, YYYY-MM or YYYY-MM-DD, with an optional prefix "
            "such as ge or le)"
        )
    prefix, year_text, month_text, day_text = match.groups()
    year = int(year_text)
    try:
        if day_text is not None:
            first = last = date(year, int(month_text), int(day_text))
        elif month_text is not None:
            month = int(month_text)
            first = date(year, month, 1)
            last = date(year, month, calendar.monthrange(year, month)[1])
        else:
            first, last = date(year, 1, 1), date(year, 12, 31)
    except ValueError:
        raise InvalidSearch(f"'{value}' is not a date of the calendar") from None
    if prefix == "ap":
        raise InvalidSearch("the date prefix 'ap' is not supported")
    return prefix or "eq", first, last


def _birthdate(criterion: Criterion) -> ColumnElement[bool]:
    column = LocalIdentity.birth_date
    alternatives: list[ColumnElement[bool]] = []
    for value in criterion.values:
        prefix, first, last = date_range(value)
        alternatives.append(
            {
                "eq": and_(column >= first, column <= last),
                "ne": or_(column < first, column > last),
                "gt": column > last,
                "sa": column > last,
                "lt": column < first,
                "eb": column < first,
                "ge": column >= first,
                "le": column <= last,
            }[prefix]
        )
    return _with_identity(any_of(alternatives))


def _gender(criterion: Criterion) -> ColumnElement[bool]:
    sexes: list[str] = []
    for value in criterion.values:
        system, code = split_token(value)
        if system not in (None, GENDER_SYSTEM) or code not in (*_SEXES, "other"):
            raise InvalidSearch(f"'{value}' is not a gender (male, female, other or unknown)")
        if code in _SEXES:
            sexes.append(_SEXES[code].value)
    return _with_identity(LocalIdentity.sex.in_(sexes)) if sexes else false()


def _postal_code(criterion: Criterion) -> ColumnElement[bool]:
    column = LocalIdentity.postal_code
    return _with_identity(any_of([prefix_condition(column, v.strip()) for v in criterion.values]))


def _telecom(criterion: Criterion) -> ColumnElement[bool]:
    """A phone number, in any of its written forms (the indexed matching key)."""
    numbers: list[str] = []
    for value in criterion.values:
        system, code = split_token(value)
        number = phone_number(code)
        if system in (None, "phone", "sms") and len(number) >= 7:
            numbers.append(number)
    return _on_identities(LocalIdentity.k_phone.in_(numbers)) if numbers else false()


def _active(criterion: Criterion) -> ColumnElement[bool]:
    status = PersonStatus.active if parse_boolean(criterion) else PersonStatus.merged
    return Person.status == status


def _by_local_id(oid: str | None, local_id: str) -> ColumnElement[bool]:
    """Retired ids (A40) too: they stay with the person of the id that absorbed them."""
    domains = select(Establishment.id)
    if oid is not None:
        domains = domains.where(Establishment.patient_id_oid == oid)
    return _on_identities(
        LocalIdentity.establishment_id.in_(domains),
        LocalIdentity.local_id == local_id,
        active=False,
    )


def _by_ins(value: str, oid: str | None) -> ColumnElement[bool]:
    """A qualified identity's INS (the only ones that may be used to identify)."""
    ins = normalize_ins(value)
    conditions = [
        LocalIdentity.k_ins == ins[:13],
        LocalIdentity.ins == ins,
        LocalIdentity.status == IdentityStatus.qualified.value,
    ]
    if oid is not None:
        conditions.append(LocalIdentity.ins_oid == oid)
    return _on_identities(*conditions)


def _identifier_alternative(system: str | None, code: str) -> ColumnElement[bool]:
    person_id = _as_uuid(code)
    if system is None:
        options = [_by_local_id(None, code), _by_ins(code, None)]
        if person_id is not None:
            options.append(Person.id == person_id)
        return or_(*options)
    if system == PERSON_ID_SYSTEM:
        return Person.id == person_id if person_id is not None else false()
    if system in INS_SYSTEMS:
        return _by_ins(code, INS_SYSTEMS[system])
    if system.startswith("urn:oid:") and _OID.match(system[8:]):
        return _by_local_id(system[8:], code)
    return false()  # a system no domain of the territory uses


def _identifier(criterion: Criterion) -> ColumnElement[bool]:
    alternatives = []
    for value in criterion.values:
        system, code = split_token(value)
        if code:
            alternatives.append(_identifier_alternative(system or None, code))
    return any_of(alternatives) if alternatives else false()


PATIENTS: SearchSpec[Person] = SearchSpec(
    model=Person,
    parameters={
        p.name: p
        for p in (
            Parameter("_id", "token", "Logical id: the territory's identifier", _id),
            Parameter(
                "identifier",
                "token",
                "An establishment's IPP (urn:oid:<domain>|IPP), the INS of a qualified "
                f"identity, or the territory's identifier ({PERSON_ID_SYSTEM}|id)",
                _identifier,
            ),
            Parameter(
                "family",
                "string",
                "Birth or used family name (case and accents ignored; prefix)",
                _family,
                _STRING_MODIFIERS,
            ),
            Parameter(
                "given", "string", "One of the given names (prefix)", _given, _STRING_MODIFIERS
            ),
            Parameter(
                "birthdate", "date", "Birth date (eq, ne, gt, lt, ge, le, sa, eb)", _birthdate
            ),
            Parameter("gender", "token", "male | female | other | unknown", _gender),
            Parameter("address-postalcode", "string", "Postal code (prefix)", _postal_code),
            Parameter("telecom", "token", "Phone number", _telecom),
            Parameter("active", "token", "false: persons merged into another", _active),
        )
    },
    order=(Person.id,),
)


# --- $match (PDQm ITI-119) ----------------------------------------------------------------

DEFAULT_MATCHES = 10
MAX_MATCHES = 200
# "possible": a best pair this many bits below the review threshold (16 times less likely).
POSSIBLE_MARGIN = 4.0
_GRADE_ORDER = {"certain": 3, "probable": 2, "possible": 1}


@dataclass(frozen=True)
class MatchInput:
    patient: dict[str, Any]
    only_certain: bool = False
    count: int = DEFAULT_MATCHES


@dataclass(frozen=True)
class Graded:
    person_id: uuid.UUID
    grade: str
    score: float


def _invalid(message: str, expression: str = "") -> FhirError:
    return FhirError(400, message, expression=expression)


def match_input(body: Any) -> MatchInput:
    """The Parameters of `$match` (or, as PDQm allows, a bare Patient)."""
    if not isinstance(body, dict):
        raise _invalid("the body must be a Parameters resource holding a Patient")
    if body.get("resourceType") == "Patient":
        return MatchInput(body)
    if body.get("resourceType") != "Parameters":
        raise _invalid("the body must be a Parameters resource holding a Patient")
    parameters = body.get("parameter")
    if not isinstance(parameters, list):
        raise _invalid("the Parameters resource has no parameter", "Parameters.parameter")
    patient: dict[str, Any] | None = None
    only_certain, count = False, DEFAULT_MATCHES
    for parameter in parameters:
        name = parameter.get("name") if isinstance(parameter, dict) else None
        if name == "resource" and patient is None:
            resource = parameter.get("resource")
            if not isinstance(resource, dict) or resource.get("resourceType") != "Patient":
                raise _invalid("the parameter 'resource' must be a Patient", "resource")
            patient = resource
        elif name == "onlyCertainMatches":
            value = parameter.get("valueBoolean")
            if not isinstance(value, bool):
                raise _invalid("onlyCertainMatches takes a valueBoolean", name)
            only_certain = value
        elif name == "count":
            value = parameter.get("valueInteger")
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise _invalid("count takes a positive valueInteger", name)
            count = min(value, MAX_MATCHES)
        else:
            raise _invalid(f"unexpected parameter {name!r} (resource, onlyCertainMatches, count)")
    if patient is None:
        raise _invalid("the parameter 'resource' (the Patient to match) is missing", "resource")
    return MatchInput(patient, only_certain, count)


def _text(value: Any, where: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _invalid(f"{where} must be a string", where)
    return value.strip()


def _items(value: Any, where: str) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise _invalid(f"{where} must be a list of objects", where)
    return value


def _name_parts(names: list[dict[str, Any]]) -> tuple[str, tuple[str, ...], str]:
    """Birth family name, given names and used name, from FR Core's official/usual names."""
    by_use: dict[str, dict[str, Any]] = {}
    for name in names:
        by_use.setdefault(_text(name.get("use"), "Patient.name.use") or "", name)
    official = by_use.get("official") or by_use.get("") or by_use.get("maiden")
    usual = by_use.get("usual")
    main = official or usual or (names[0] if names else None)
    if main is None:
        return "", (), ""
    family = _text(main.get("family"), "Patient.name.family")
    given_values = main.get("given") or (usual or {}).get("given") or []
    if not isinstance(given_values, list):
        raise _invalid("Patient.name.given must be a list", "Patient.name.given")
    given = tuple(g for g in (_text(v, "Patient.name.given") for v in given_values) if g)
    used = _text(usual.get("family"), "Patient.name.family") if usual and usual is not main else ""
    return family, given, used


def _extension(element: dict[str, Any], url: str) -> dict[str, Any] | None:
    return next(
        (e for e in _items(element.get("extension"), "extension") if e.get("url") == url), None
    )


def _birth_place_code(patient: dict[str, Any]) -> str:
    extension = _extension(patient, BIRTH_PLACE_URL)
    if extension is None:
        return ""
    address = extension.get("valueAddress")
    if not isinstance(address, dict):
        raise _invalid("the birth place extension takes a valueAddress", "Patient.extension")
    insee = _extension(address, INSEE_CODE_URL)
    coding = insee.get("valueCoding") if insee else None
    code = _text(coding.get("code"), "inseeCode") if isinstance(coding, dict) else ""
    code = code or _text(address.get("district"), "birthPlace.district")
    return code.upper() if len(code) == 5 else ""


def _reliability(patient: dict[str, Any]) -> IdentityStatus | None:
    """FR Core identity reliability: its `identityStatus` (PROV, RECUP, VALI, QUAL)."""
    extension = _extension(patient, IDENTITY_RELIABILITY_URL)
    if extension is None:
        return None
    for part in _items(extension.get("extension"), "identityReliability.extension"):
        coding = part.get("valueCoding")
        if part.get("url") in ("identityStatus", "identityReliability") and isinstance(
            coding, dict
        ):
            try:
                return IdentityStatus(str(coding.get("code")))
            except ValueError:
                return None
    return None


def match_features(patient: dict[str, Any]) -> Features:
    """The traits of the Patient to match, in the matcher's form."""
    family, given, used = _name_parts(_items(patient.get("name"), "Patient.name"))
    gender = _text(patient.get("gender"), "Patient.gender")
    if gender and gender not in (*_SEXES, "other"):
        raise _invalid(f"'{gender}' is not a gender", "Patient.gender")
    birth_text = _text(patient.get("birthDate"), "Patient.birthDate")
    birth_date: date | None = None
    if birth_text:
        try:
            birth_date = date.fromisoformat(birth_text) if len(birth_text) == 10 else None
        except ValueError:
            raise _invalid(f"'{birth_text}' is not a date", "Patient.birthDate") from None
    addresses = _items(patient.get("address"), "Patient.address")
    home = next((a for a in addresses if a.get("use") == "home"), addresses[0] if addresses else {})
    lines = home.get("line") or []
    if not isinstance(lines, list):
        raise _invalid("Patient.address.line must be a list", "Patient.address.line")
    phones = [
        t for t in _items(patient.get("telecom"), "Patient.telecom") if t.get("system") == "phone"
    ]
    ins, ins_trait = "", ""
    for identifier in _items(patient.get("identifier"), "Patient.identifier"):
        if _text(identifier.get("system"), "Patient.identifier.system") in INS_SYSTEMS:
            try:
                ins = validate_ins(_text(identifier.get("value"), "Patient.identifier.value"))
            except InvalidIns as error:
                raise _invalid(f"invalid INS: {error}", "Patient.identifier") from None
            ins_trait = ins
    if not family and not ins:
        raise _invalid(
            "the Patient to match needs a family name or an INS identifier", "Patient.name"
        )
    traits = IdentityTraits(
        birth_family_name=family,
        given_names=given,
        sex=_SEXES.get(gender, Sex.unknown),
        birth_date=birth_date,
        used_family_name=used,
        birth_place_code=_birth_place_code(patient),
        address=" ".join(_text(line, "Patient.address.line") for line in lines),
        postal_code=_text(home.get("postalCode"), "Patient.address.postalCode"),
        city=_text(home.get("city"), "Patient.address.city"),
        phone=_text(phones[0].get("value"), "Patient.telecom.value") if phones else "",
        ins=ins_trait,
    )
    # FR Core conveys an INS only for a qualified identity; its reliability extension, when
    # given, says so explicitly.
    status = _reliability(patient) or (
        IdentityStatus.qualified if ins else IdentityStatus.provisional
    )
    return Features(traits, status)


def grade(judgements: Sequence[PairJudgement], model: MatchModel) -> tuple[str, float] | None:
    """A person's match grade and score from its identities' pairs with the input; None
    for "certainly not" (a rule excludes it) and for too weak a resemblance.

    Certain: what would link (`decide.person_standing`); probable: what would go to review;
    possible: the best pair just below the lower threshold (POSSIBLE_MARGIN).
    """
    standing = person_standing(judgements, model)
    if standing is None:
        return None
    best = max(j.weight for j in judgements)
    if standing is Verdict.link:
        label = "certain"
    elif standing is Verdict.review:
        label = "probable"
    elif best >= model.lower - POSSIBLE_MARGIN:
        label = "possible"
    else:
        return None
    return label, round(model.probability(best), 6)


def find_matches(session: Session, features: Features) -> list[Graded]:
    """The persons resembling `features`, best first (grade, then score)."""
    model, total = MODEL_CACHE.get(session)
    frequencies = frequencies_for(session, features, total)
    judgements: dict[uuid.UUID, list[PairJudgement]] = defaultdict(list)
    for identity in candidates(session, features):
        judgements[identity.person_id].append(
            judge(features, features_of(identity), model, frequencies)
        )
    found = []
    for person_id, pairs in judgements.items():
        graded = grade(pairs, model)
        if graded is not None:
            found.append(Graded(person_id, *graded))
    found.sort(key=lambda g: (_GRADE_ORDER[g.grade], g.score, str(g.person_id)), reverse=True)
    return found


def _persons(session: Session, ids: Sequence[uuid.UUID]) -> list[Person]:
    found = {p.id: p for p in session.scalars(select(Person).where(Person.id.in_(list(ids))))}
    return [found[i] for i in ids if i in found]


def _match(session: Session, call: OperationCall) -> OperationResult:
    wanted = match_input(call.body)
    matches = find_matches(session, match_features(wanted.patient))
    if wanted.only_certain:
        certain = [m for m in matches if m.grade == "certain"]
        # Two certain persons cannot both be the patient: PDQm answers none (its case 5).
        matches = certain if len(certain) == 1 else []
    matches = matches[: wanted.count]
    persons = _persons(session, [m.person_id for m in matches])
    by_id = {m.person_id: m for m in matches}
    entries = []
    for person, resource in zip(persons, patient_resources(session, persons), strict=True):
        graded = by_id[person.id]
        entries.append(
            {
                "fullUrl": f"{call.base}/Patient/{person.id}",
                "resource": resource,
                "search": {
                    "extension": [{"url": MATCH_GRADE_URL, "valueCode": graded.grade}],
                    "mode": "match",
                    "score": graded.score,
                },
            }
        )
    record(
        session,
        actor=call.principal.actor,
        action="patient.match",
        entity_type="Patient",
        person_id=str(matches[0].person_id) if len(matches) == 1 else None,
        basis=call.decision.basis.value if call.decision.basis else None,
        detail={
            "persons": [str(m.person_id) for m in matches],
            "grades": [m.grade for m in matches],
            "only_certain": wanted.only_certain,
        },
    )
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "id": str(uuid.uuid4()),
        "meta": {"lastUpdated": datetime.now(UTC).isoformat()},
        "type": "searchset",
        "total": len(entries),
        "link": [{"relation": "self", "url": f"{call.base}/Patient/$match"}],
    }
    if entries:
        bundle["entry"] = entries
    return OperationResult(bundle)


# --- $ihe-pix (PIXm ITI-83) ---------------------------------------------------------------

_PIX_PARAMETERS = frozenset({"sourceIdentifier", "targetSystem", "_format"})
# Persons merged into persons merged since: followed at most this far.
_MAX_HOPS = 8


def _survivor(session: Session, person: Person | None) -> Person | None:
    for _ in range(_MAX_HOPS):
        if person is None or person.status != PersonStatus.merged or not person.merged_into_id:
            return person
        person = session.get(Person, person.merged_into_id)
    return person


def _identity_survivor(session: Session, identity: LocalIdentity) -> LocalIdentity:
    for _ in range(_MAX_HOPS):
        if identity.active or identity.replaced_by_id is None:
            return identity
        replacement = session.get(LocalIdentity, identity.replaced_by_id)
        if replacement is None:
            return identity
        identity = replacement
    return identity


def _source_persons(
    session: Session, system: str, value: str, domains: dict[str, Establishment], base: str
) -> list[Person] | None:
    """The persons a source identifier names ([] when not found); None: unknown domain."""
    if system in (PERSON_ID_SYSTEM, base):
        # PIXm's form for a logical id is `[base]|Patient/<id>`.
        reference = value.removeprefix("Patient/") if system == base else value
        try:
            person = session.get(Person, uuid.UUID(reference))
        except ValueError:
            return []
        return [person] if person is not None else []
    if system in INS_SYSTEMS:
        ins = normalize_ins(value)
        rows = session.scalars(
            select(LocalIdentity).where(
                LocalIdentity.k_ins == ins[:13],
                LocalIdentity.ins == ins,
                LocalIdentity.ins_oid == INS_SYSTEMS[system],
                LocalIdentity.status == IdentityStatus.qualified.value,
                LocalIdentity.active,
            )
        )
        return _persons(session, sorted({r.person_id for r in rows}))
    establishment = domains.get(system)
    if establishment is None:
        return None
    identity = session.scalars(
        select(LocalIdentity).where(
            LocalIdentity.establishment_id == establishment.id, LocalIdentity.local_id == value
        )
    ).one_or_none()
    if identity is None:
        return []
    return _persons(session, [_identity_survivor(session, identity).person_id])


def _pix_identifiers(session: Session, persons: Sequence[Person]) -> list[dict[str, Any]]:
    """Every current identifier of the persons: the territory's, the INS, each domain's IPP."""
    ids = [p.id for p in persons]
    identities = list(
        session.scalars(
            select(LocalIdentity)
            .where(LocalIdentity.person_id.in_(ids), LocalIdentity.active)
            .order_by(LocalIdentity.created_at, LocalIdentity.id)
        )
    )
    establishments = _establishments(session, (i.establishment_id for i in identities))
    identifiers = [territory_identifier(p.id) for p in persons]
    identifiers += ins_identifiers(identities)
    identifiers += [
        local_identifier(i, establishments[i.establishment_id])
        for i in identities
        if i.establishment_id in establishments
    ]
    return identifiers


def _pix_error(status: int, code: str, diagnostics: str) -> OperationResult:
    return OperationResult(operation_outcome(diagnostics, code=code), status)


def _pix(session: Session, call: OperationCall) -> OperationResult:
    unknown = sorted({name for name, _ in call.parameters} - _PIX_PARAMETERS)
    if unknown:
        raise _invalid(f"unknown parameters: {', '.join(unknown)} (sourceIdentifier, targetSystem)")
    sources = [v for name, v in call.parameters if name == "sourceIdentifier"]
    if len(sources) != 1:
        raise _invalid("give exactly one sourceIdentifier (system|value)", "sourceIdentifier")
    system, value = split_token(sources[0])
    if not system or not value:
        raise _invalid(
            "the sourceIdentifier needs its assigning authority: system|value", "sourceIdentifier"
        )
    targets = [v.strip() for name, v in call.parameters if name == "targetSystem"]
    domains = {f"urn:oid:{e.patient_id_oid}": e for e in session.scalars(select(Establishment))}
    known = {*domains, PERSON_ID_SYSTEM, *INS_SYSTEMS, call.base}
    if any(t not in known for t in targets):
        return _pix_error(403, "code-invalid", "targetSystem not found")
    found = _source_persons(session, system, value, domains, call.base)
    if found is None:
        return _pix_error(400, "code-invalid", "sourceIdentifier Assigning Authority not found")
    persons: list[Person] = []
    for person in found:
        survivor = _survivor(session, person)
        if survivor is not None and survivor not in persons:
            persons.append(survivor)
    record(
        session,
        actor=call.principal.actor,
        action="patient.pix",
        outcome="success" if persons else "not_found",
        entity_type="Patient",
        entity_id=str(persons[0].id) if len(persons) == 1 else None,
        person_id=str(persons[0].id) if len(persons) == 1 else None,
        basis=call.decision.basis.value if call.decision.basis else None,
        detail={
            "source_system": system,
            "target_systems": targets,
            "persons": [str(p.id) for p in persons],
        },
    )
    if not persons:
        return _pix_error(404, "not-found", "sourceIdentifier Patient Identifier not found")
    parameters = [
        {"name": "targetIdentifier", "valueIdentifier": identifier}
        for identifier in _pix_identifiers(session, persons)
        if (identifier["system"], identifier["value"]) != (system, value)
        and (not targets or identifier["system"] in targets)
    ]
    if not targets or call.base in targets:
        parameters += [
            {"name": "targetId", "valueReference": {"reference": f"Patient/{p.id}"}}
            for p in persons
        ]
    return OperationResult({"resourceType": "Parameters", "parameter": parameters})


# --- registration -------------------------------------------------------------------------

RESOURCE_TYPES = (
    ResourceType(
        name="Patient",
        profile=PATIENT_PROFILE,
        spec=PATIENTS,
        read=_read,
        render=patient_resources,
        action=Action.identity_read,
        audit=Audit(action="patient", person_of=lambda person: str(person.id)),
        operations=(
            Operation(
                name="match",
                definition=MATCH_DEFINITION,
                documentation="PDQm [ITI-119]: the persons resembling a Patient, graded "
                "(match-grade) and scored by the territory's matching model",
                methods=frozenset({"POST"}),
                run=_match,
            ),
            Operation(
                name="ihe-pix",
                definition=PIX_DEFINITION,
                documentation="PIXm [ITI-83]: a patient's identifiers in the other domains "
                "(establishments' IPP, the territory's identifier, the INS when qualified)",
                methods=frozenset({"GET"}),
                run=_pix,
            ),
        ),
    ),
)
