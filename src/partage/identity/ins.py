"""The INS matricule (Identifiant National de Santé): a NIR or a NIA and its two-digit key.

The matricule is the patient's NIR (the INSEE social-security number, for people born in
France or registered by the INSEE) or, for people born abroad whose registration is not
yet certified, a NIA (numéro identifiant d'attente, assigned by the CNAV). A NIA is built
exactly like a NIR (sex, year and month of birth, 99 and the country code, order, key) and
keeps its value once certified: the digits cannot tell one from the other. Only the OID of
the assigning authority, which the INSi teleservice returns with the matricule, does; it
must be kept alongside it, which is why `ins_oid` asks and does not guess.

Validation here is syntactic (length, characters, sex digit, month, key): it catches typing
errors, which is what an importer needs before trusting a number; whether an INS really
belongs to a patient is what the identity status (QUAL) says, not this module.
"""

from __future__ import annotations

import re
from datetime import date

from partage.identity.traits import Sex

# Assigning authorities (FR Core `fr-core-patient-ins` identifier systems, as urn:oid:...).
INS_NIR_OID = "1.2.250.1.213.1.4.8"
INS_NIA_OID = "1.2.250.1.213.1.4.9"
INS_NIR_TEST_OID = "1.2.250.1.213.1.4.10"  # fictitious test patients of the INSi test sets
INS_NIR_DEMO_OID = "1.2.250.1.213.1.4.11"  # fictitious demonstration patients
# The FR Core identifier slice of each authority.
INS_OIDS: dict[str, str] = {
    INS_NIR_OID: "INS-NIR",
    INS_NIA_OID: "INS-NIA",
    INS_NIR_TEST_OID: "INS-NIR-TEST",
    INS_NIR_DEMO_OID: "INS-NIR-DEMO",
}

# Corsica: the departments 2A and 2B count as 19 and 18 in the key (the same as "20" less
# 1 000 000 and 2 000 000, the other way the rule is often written).
_CORSICA = {"2A": "19", "2B": "18"}
_SEPARATORS = re.compile(r"[\s.]+")
_SEX_DIGITS = {Sex.male: "1", Sex.female: "2"}


class InvalidIns(ValueError):
    """The value is not a well-formed INS matricule; the message says why, in English."""


def _body_number(nir13: str) -> int:
    return int(nir13[:5] + _CORSICA.get(nir13[5:7], nir13[5:7]) + nir13[7:])


def ins_key(nir13: str) -> int:
    """The control key of a 13-character NIR or NIA: 97 - (number mod 97), from 1 to 97."""
    nir13 = nir13.upper()
    if len(nir13) != 13:
        raise InvalidIns(f"a NIR without its key has 13 characters, not {len(nir13)}")
    _check_characters(nir13)
    return 97 - _body_number(nir13) % 97


def _check_characters(value: str) -> None:
    for position, character in enumerate(value, start=1):
        if position in (6, 7) and value[5:7] in _CORSICA:
            continue
        if not character.isascii() or not character.isdigit():
            where = "the department (2A/2B or digits)" if position in (6, 7) else "a digit"
            raise InvalidIns(f"character {character!r} at position {position}: expected {where}")


def normalize_ins(value: str) -> str:
    """`value` without spaces or dots, upper case: the form INS are stored and compared in."""
    return _SEPARATORS.sub("", value).upper()


def validate_ins(value: str) -> str:
    """The normalised 15-character INS, or `InvalidIns` saying what is wrong with it.

    The month is checked leniently: besides 01-12, the RNIPP uses 20-42 and 50 and above for
    people whose civil status gave no usable month, and their matricules are real.
    """
    ins = normalize_ins(value)
    if not ins:
        raise InvalidIns("the INS is empty")
    if len(ins) != 15:
        raise InvalidIns(f"an INS has 15 characters (13 and a 2-digit key), not {len(ins)}")
    _check_characters(ins)
    if ins[0] in "78":
        raise InvalidIns(
            f"first digit {ins[0]}: a provisional number (NNP) of a health insurance fund, "
            "not an INS (a NIR or NIA starts with 1 or 2)"
        )
    if ins[0] not in "12":
        raise InvalidIns(f"first digit {ins[0]}: the sex digit of an INS is 1 or 2")
    month = int(ins[3:5])
    if not (1 <= month <= 12 or 20 <= month <= 42 or month >= 50):
        raise InvalidIns(f"birth month {ins[3:5]} is impossible (01-12, 20-42 or 50-99)")
    expected = 97 - _body_number(ins[:13]) % 97
    if int(ins[13:]) != expected:
        raise InvalidIns(f"key {ins[13:]} does not match the number (expected {expected:02d})")
    return ins


def is_valid_ins(value: str) -> bool:
    try:
        validate_ins(value)
    except InvalidIns:
        return False
    return True


def format_ins(ins: str) -> str:
    """The INS grouped as printed on a carte Vitale: "2 79 03 51 215 189 89"."""
    n = validate_ins(ins)
    return " ".join((n[0], n[1:3], n[3:5], n[5:7], n[7:10], n[10:13], n[13:]))


def ins_oid(ins: str, *, nia: bool = False) -> str:
    """The OID of the authority that assigned `ins`: the INS-NIR one, or INS-NIA if `nia`.

    The number alone cannot tell (see the module docstring): `nia` must come from where the
    INS came from, the INSi answer or the OID a message carried. Validates `ins` first, so
    that no OID is ever attached to a malformed matricule.
    """
    validate_ins(ins)
    return INS_NIA_OID if nia else INS_NIR_OID


def make_nir(*, sex: Sex, birth_date: date, birth_place_code: str, order: int) -> str:
    """A well-formed 15-character NIR (or NIA) for these traits, key included.

    `birth_place_code` is the INSEE code of the birth commune (5 characters, 2A/2B for
    Corsica, 97xxx overseas), or 99 and the country code for people born abroad; `order`
    tells apart the people born in the same place and month (1 to 999).
    """
    if sex not in _SEX_DIGITS:
        raise ValueError("a NIR needs a known sex (M or F)")
    place = birth_place_code.upper()
    if len(place) != 5 or not (place.isdigit() or (place[:2] in _CORSICA and place[2:].isdigit())):
        raise ValueError(f"birth place {birth_place_code!r} is not a 5-character INSEE code")
    if not 1 <= order <= 999:
        raise ValueError(f"order {order} is out of 1-999")
    body = f"{_SEX_DIGITS[sex]}{birth_date.year % 100:02d}{birth_date.month:02d}{place}{order:03d}"
    return f"{body}{ins_key(body):02d}"
