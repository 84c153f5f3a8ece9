"""The INS matricule: key, validation reasons, NIR construction, assigning-authority OIDs."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from partage.identity.ins import (
    INS_NIA_OID,
    INS_NIR_DEMO_OID,
    INS_NIR_OID,
    INS_NIR_TEST_OID,
    INS_OIDS,
    InvalidIns,
    format_ins,
    ins_key,
    ins_oid,
    is_valid_ins,
    make_nir,
    normalize_ins,
    validate_ins,
)
from partage.identity.traits import Sex

# Published examples: python-stdnum's doctests (incl. Corsica 2A/2B), the fictitious ANS
# test patient of an IHE PAM France message, and a classic French maths exercise.
PUBLISHED = (
    "295109912611193",
    "253072B07300470",
    "253072A07300443",
    "279035121518989",
    "184026311301176",
)


@pytest.mark.parametrize("ins", PUBLISHED)
def test_published_ins_are_valid(ins: str) -> None:
    assert validate_ins(ins) == ins
    assert is_valid_ins(ins)


def test_key_is_97_minus_the_number_modulo_97() -> None:
    assert ins_key("1891275125012") == 82
    assert ins_key("2951099126111") == 93
    multiple = 1_850_575_123_000 // 97 * 97  # remainder 0: the key is 97, not 0
    assert ins_key(str(multiple)) == 97


def test_corsica_counts_as_19_and_18() -> None:
    assert ins_key("253072A073004") == 43 == 97 - 2530719073004 % 97
    assert ins_key("253072B073004") == 70 == 97 - 2530718073004 % 97
    assert ins_key("253072a073004") == 43


def test_normalisation_removes_spaces_and_dots_and_upper_cases() -> None:
    assert validate_ins(" 2 95 10 99 126 111 93 ") == "295109912611193"
    assert validate_ins("2.95.10.99.126.111.93") == "295109912611193"
    assert validate_ins("2 53 07 2a 073 004 43") == "253072A07300443"
    assert normalize_ins("1\u00a084 02") == "18402"


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("", "empty"),
        ("29510991261119", "15 characters"),
        ("2951099126111930", "15 characters"),
        ("29510991261119X", "position 15"),
        ("2951O9912611193", "position 5"),
        ("253072C07300443", "position 7"),
        ("795109912611193", "provisional number (NNP)"),
        ("395109912611193", "first digit 3"),
        ("295139912611193", "birth month 13"),
        ("295009912611193", "birth month 00"),
        ("295439912611193", "birth month 43"),
        ("295109912611199", "key 99 does not match"),
    ],
)
def test_rejections_say_why(value: str, reason: str) -> None:
    with pytest.raises(InvalidIns, match=reason.replace("(", r"\(").replace(")", r"\)")):
        validate_ins(value)
    assert not is_valid_ins(value)


@pytest.mark.parametrize("month", ["20", "42", "50", "99"])
def test_special_months_of_the_rnipp_are_accepted(month: str) -> None:
    body = f"1{'70'}{month}86194123"
    assert validate_ins(f"{body}{ins_key(body):02d}")


def test_invalid_ins_is_a_value_error() -> None:
    assert issubclass(InvalidIns, ValueError)


@given(
    st.sampled_from(PUBLISHED),
    st.integers(min_value=1, max_value=12),
    st.integers(min_value=1, max_value=9),
)
def test_any_single_digit_error_is_caught(ins: str, position: int, shift: int) -> None:
    if not ins[position].isdigit():
        return
    wrong = ins[:position] + str((int(ins[position]) + shift) % 10) + ins[position + 1 :]
    assert not is_valid_ins(wrong)


@given(st.sampled_from(PUBLISHED), st.integers(min_value=0, max_value=12))
def test_any_swap_of_two_adjacent_digits_is_caught(ins: str, position: int) -> None:
    a, b = ins[position], ins[position + 1]
    if a == b or not (a + b).isdigit():
        return
    swapped = ins[:position] + b + a + ins[position + 2 :]
    assert not is_valid_ins(swapped)


def test_make_nir_builds_what_it_is_told() -> None:
    nir = make_nir(
        sex=Sex.female, birth_date=date(1979, 3, 14), birth_place_code="51215", order=189
    )
    assert nir == "279035121518989"
    poitiers = make_nir(
        sex=Sex.male, birth_date=date(2001, 11, 2), birth_place_code="86194", order=7
    )
    assert poitiers.startswith("1011186194007") and validate_ins(poitiers) == poitiers


def test_make_nir_for_corsica_overseas_and_abroad() -> None:
    born = date(1953, 7, 1)
    assert make_nir(sex=Sex.female, birth_date=born, birth_place_code="2A073", order=4) == (
        "253072A07300443"
    )
    reunion = make_nir(sex=Sex.male, birth_date=born, birth_place_code="97411", order=1)
    morocco = make_nir(sex=Sex.male, birth_date=born, birth_place_code="99350", order=12)
    assert reunion[5:10] == "97411" and morocco[5:10] == "99350"
    assert is_valid_ins(reunion) and is_valid_ins(morocco)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"sex": Sex.unknown}, "known sex"),
        ({"birth_place_code": "8619"}, "INSEE code"),
        ({"birth_place_code": "2C073"}, "INSEE code"),
        ({"order": 0}, "1-999"),
        ({"order": 1000}, "1-999"),
    ],
)
def test_make_nir_refuses_what_no_nir_can_hold(kwargs: dict[str, object], message: str) -> None:
    arguments: dict[str, object] = {
        "sex": Sex.male,
        "birth_date": date(1980, 1, 1),
        "birth_place_code": "86194",
        "order": 1,
    }
    with pytest.raises(ValueError, match=message):
        make_nir(**{**arguments, **kwargs})  # type: ignore[arg-type]


def test_oids_are_the_fr_core_identifier_systems() -> None:
    assert INS_NIR_OID == "1.2.250.1.213.1.4.8"
    assert INS_NIA_OID == "1.2.250.1.213.1.4.9"
    assert INS_NIR_TEST_OID == "1.2.250.1.213.1.4.10"
    assert INS_NIR_DEMO_OID == "1.2.250.1.213.1.4.11"
    assert INS_OIDS[INS_NIA_OID] == "INS-NIA"
    assert INS_OIDS[INS_NIR_DEMO_OID] == "INS-NIR-DEMO"


def test_ins_oid_is_told_not_guessed_and_validates_first() -> None:
    assert ins_oid("295109912611193") == INS_NIR_OID
    assert ins_oid("295109912611193", nia=True) == INS_NIA_OID
    with pytest.raises(InvalidIns):
        ins_oid("295109912611199")


def test_format_groups_as_on_the_card() -> None:
    assert format_ins("279035121518989") == "2 79 03 51 215 189 89"
    assert format_ins("253072a07300443") == "2 53 07 2A 073 004 43"
