"""The search of Patients (IHE PDQm ITI-78): FHIR search parameters as conditions on
persons and their identities.

A person matches when each criterion is met by one of its identities (the person's traits
are the union of what its establishments know: a used name from one hospital and a birth
date from another find them). Criteria on identities are `person.id IN (identities
matching)`, answered from the identities' indexes; pages are keyset pages on the person id
(`partage.search.run_search` on `Person`), one entry per person whatever number of its
identities match.
"""

from __future__ import annotations

import calendar
import re
import uuid
from datetime import date

from sqlalchemy import ColumnElement, and_, exists, false, or_, select

from partage.identity.fhir_patient import INS_SYSTEMS, PERSON_ID_SYSTEM, SEXES
from partage.identity.ins import normalize_ins
from partage.identity.models import LocalIdentity, Person, PersonStatus
from partage.identity.normalize import fold, phone_number
from partage.identity.traits import IdentityStatus
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

GENDER_SYSTEM = "http://hl7.org/fhir/administrative-gender"
_STRING_MODIFIERS = frozenset({"exact", "contains"})
_OID = re.compile(r"^[0-2](?:\.(?:0|[1-9][0-9]*))+$")


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
        if system not in (None, GENDER_SYSTEM) or code not in (*SEXES, "other"):
            raise InvalidSearch(f"'{value}' is not a gender (male, female, other or unknown)")
        if code in SEXES:
            sexes.append(SEXES[code].value)
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
