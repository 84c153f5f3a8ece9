"""The synthetic extracts of the Vienne, read by the real readers; the demo's directory, loaded
by the real importers; and the demo's professional accounts, found in it by national id."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from sqlalchemy import func, select

from partage.db import transaction
from partage.demo import (
    ACCOUNTS,
    ESTABLISHMENTS,
    DemoAccount,
    load_demo_directory,
    seed_demo_territory,
)
from partage.directory import finess, rpps, vienne
from partage.directory.finess import FinessRow
from partage.directory.models import Organization, Practitioner, PractitionerRole
from partage.directory.rpps import RppsRow, fold
from partage.platform import Platform
from partage.security import actions
from partage.security.models import Profile
from partage.security.principal import operator_principal
from tests.conftest import TEST_PASSWORD, unique

PROFESSIONALS = 2000
# The profession each professional profile stands for (RPPS profession codes).
PROFESSION_OF = {
    Profile.hospital_physician: "10",
    Profile.city_physician: "10",
    Profile.pharmacist: "21",
    Profile.nurse: "60",
}


def _rpps_rows(professionals: int, seed: int = 86) -> list[RppsRow]:
    buffer = io.StringIO()
    rpps.write_synthetic_extract(buffer, professionals, seed=seed)
    parsed = list(rpps.read_rows(io.BytesIO(buffer.getvalue().encode("utf-8"))))
    rejected = [row for row in parsed if isinstance(row, rpps.RejectedRow)]
    assert rejected == []
    return [row for row in parsed if isinstance(row, RppsRow)]


def _finess_rows(establishments: int) -> list[FinessRow]:
    buffer = io.BytesIO()
    finess.write_synthetic_extract(buffer, establishments)
    parsed = list(finess.read_rows(io.BytesIO(buffer.getvalue())))
    rejected = [row for row in parsed if isinstance(row, rpps.RejectedRow)]
    assert rejected == []
    return [row for row in parsed if isinstance(row, FinessRow)]


def _luhn_valid(digits: str) -> bool:
    return vienne.check_digit(digits[:-1]) == digits[-1]


def test_the_rpps_extract_parses_whole_and_looks_like_the_vienne() -> None:
    rows = _rpps_rows(PROFESSIONALS)
    national_ids = {row.national_id for row in rows}
    assert len(national_ids) == PROFESSIONALS
    assert len({row.role_key for row in rows}) == len(rows)  # no activity listed twice
    assert 1.2 < len(rows) / PROFESSIONALS < 1.3  # the volume benchmarks rely on
    rpps_ids = [n for n in national_ids if n.startswith("8")]
    assert all(_luhn_valid(n[1:]) for n in rpps_ids)
    assert any(n.startswith("0") and len(n) == 10 for n in national_ids)  # some ADELI left
    assert {row[9] for row in rows} == {"10", "21", "40", "50", "60", "70"}
    doctors = [row for row in rows if row[9] == "10"]
    assert all(row[15] and row[16] for row in doctors)
    assert len({row[15] for row in doctors}) > 10
    assert {row[17] for row in rows} == {"L", "S"}
    communes = {(c.postal_code, c.insee_code, c.name) for c in vienne.COMMUNES}
    assert {(row[35], row[36], row[37]) for row in rows} <= communes
    assert len({row[37] for row in rows}) > 20
    assert all(row[44] == "86" for row in rows)
    family_names = {row[7] for row in rows}
    assert "LEFÈVRE" in family_names
    assert {"LE GALL", "D'ALMEIDA"} & family_names
    # Some professionals practise on two sites: two rows, two structures.
    structures: dict[str, set[str | None]] = {}
    for row in rows:
        structures.setdefault(row.national_id, set()).add(row.structure_key)
    assert sum(1 for keys in structures.values() if len(keys) == 2) > PROFESSIONALS // 10


def test_the_finess_extract_starts_with_the_demo_establishments() -> None:
    rows = _finess_rows(1200)
    assert len(rows) == 1200
    numbers = [row["nofinesset"] for row in rows]
    assert len(set(numbers)) == len(numbers)
    for row in rows:
        assert row["nofinesset"] and _luhn_valid(row["nofinesset"])
        assert row["nofinessej"] and _luhn_valid(row["nofinessej"])
        assert row["departement"] == "86"
        assert row.postal_code_and_city[1]
    assert numbers[: len(ESTABLISHMENTS)] == [e.finess for e in ESTABLISHMENTS]
    chu = rows[0]
    assert chu["rslongue"] == "CHU de Poitiers"
    assert (chu["nofinesset"], chu["nofinessej"]) == ("860014208", "860014190")
    assert {row["categetab"] for row in rows} >= {"101", "355", "365", "500", "620"}


def test_both_extracts_name_the_same_sites_and_legal_entities() -> None:
    sites = {(row["nofinesset"], row["nofinessej"]) for row in _finess_rows(1200)}
    rows = _rpps_rows(PROFESSIONALS)
    named = [(row[21], row[22]) for row in rows if row[21]]
    assert len(named) > len(rows) // 4  # salaried staff of hospitals, clinics, nursing homes
    assert set(named) <= sites
    assert all(row[22] for row in rows if row[21])
    on_chu = [row for row in rows if row[21] == "860014208"]
    assert {row[9] for row in on_chu} >= {"10", "60"}
    assert all(row[17] == "S" and row[48] == "SA01" for row in on_chu)
    # City practices carry no FINESS number, and keep one address for all their rows.
    addresses: dict[str | None, set[tuple[str | None, ...]]] = {}
    for row in rows:
        addresses.setdefault(row.structure_key, set()).add((row[24], row.address_line, row[37]))
    assert all(len(found) == 1 for found in addresses.values())


def test_the_named_professionals_come_first_whatever_the_seed() -> None:
    for seed in (86, 7):
        rows = _rpps_rows(40, seed=seed)
        first = list(dict.fromkeys(row.national_id for row in rows))
        assert first[: len(rpps.NAMED_PROFESSIONALS)] == [
            named.national_id for named in rpps.NAMED_PROFESSIONALS
        ]
    lefevre = next(n for n in rpps.NAMED_PROFESSIONALS if n.family_name == "LEFÈVRE")
    assert fold(lefevre.family_name) == "LEFEVRE"


@pytest.mark.parametrize(
    "account", [a for a in ACCOUNTS if a.profile in PROFESSION_OF], ids=lambda a: a.login
)
def test_each_professional_account_is_in_the_rpps_extract(account: DemoAccount) -> None:
    assert account.national_id is not None
    rows = [row for row in _rpps_rows(40) if row.national_id == account.national_id]
    assert rows, account.login
    first = rows[0]
    display = fold(account.display_name)
    assert fold(first[7] or "") in display and fold(first[8] or "") in display
    assert first[9] == PROFESSION_OF[account.profile]
    establishment = next(e for e in ESTABLISHMENTS if e.code == account.establishment)
    assert first[21] == establishment.finess
    assert first[17] == ("S" if account.profile is Profile.hospital_physician else "L")
    if account.profile is Profile.city_physician:
        assert first[15] == "SM54"  # a general practitioner


def test_the_generators_are_deterministic() -> None:
    def rpps_text(seed: int) -> str:
        buffer = io.StringIO()
        rpps.write_synthetic_extract(buffer, 300, seed=seed)
        return buffer.getvalue()

    def finess_bytes(seed: int) -> bytes:
        buffer = io.BytesIO()
        finess.write_synthetic_extract(buffer, 100, seed=seed)
        return buffer.getvalue()

    assert rpps_text(86) == rpps_text(86)
    assert rpps_text(86) != rpps_text(87)
    assert finess_bytes(86) == finess_bytes(86)
    assert finess_bytes(86) != finess_bytes(87)


def test_the_demo_directory_loads_once_and_links_the_accounts(fresh_platform: Platform) -> None:
    platform = fresh_platform
    with transaction(platform.sessions) as session:
        seed_demo_territory(session, platform, actor=operator_principal())
    loaded = load_demo_directory(platform, actor=operator_principal(), professionals=300)
    assert [extract.kind for extract in loaded] == ["finess", "rpps"]
    for extract in loaded:
        assert extract.summary is not None and extract.summary.rejected == 0
        assert extract.path.is_file()
        assert extract.path.parent == Path(platform.settings.data_dir) / "demo"

    again = load_demo_directory(platform, actor=operator_principal(), professionals=400)
    assert [extract.summary for extract in again] == [None, None]
    assert [extract.path for extract in again] == [extract.path for extract in loaded]

    with transaction(platform.read_sessions) as session:
        practitioners = session.scalar(select(func.count()).select_from(Practitioner))
        assert practitioners == 300
        for account in ACCOUNTS:
            if account.national_id is None:
                continue
            practitioner = session.scalar(
                select(Practitioner).where(Practitioner.national_id == account.national_id)
            )
            assert practitioner is not None, account.login
            assert practitioner.family_name_folded in fold(account.display_name)
            establishment = next(e for e in ESTABLISHMENTS if e.code == account.establishment)
            sites = session.scalars(
                select(Organization.finess_et)
                .join(PractitionerRole, PractitionerRole.organization_id == Organization.id)
                .where(
                    PractitionerRole.practitioner_id == practitioner.id,
                    PractitionerRole.profession_code == PROFESSION_OF[account.profile],
                )
            )
            assert establishment.finess in set(sites), account.login


# --- accounts link to the directory by national id ---------------------------------------


@pytest.mark.parametrize(
    ("profile", "national_id", "refusal"),
    [
        (Profile.city_physician, "81008600001", "a national id is RPPS"),
        (Profile.city_physician, "8100860000l4", "a national id is RPPS"),
        (Profile.city_physician, "810086000015", "wrong check digit"),
        (Profile.pharmacist, "0866000012", "identified by an RPPS number"),
        (Profile.patient, "810086000014", "a patient account has no professional national id"),
    ],
)
def test_account_national_ids_are_checked(
    platform: Platform, profile: Profile, national_id: str, refusal: str
) -> None:
    with transaction(platform.sessions) as session, pytest.raises(actions.InvalidInput) as caught:
        actions.create_account(
            session,
            platform.passwords,
            actor=operator_principal(),
            login=unique("national-id"),
            display_name="Dr Camille Test",
            profile=profile,
            password=TEST_PASSWORD,
            national_id=national_id,
        )
    assert refusal in str(caught.value)


def test_a_nurse_may_keep_an_adeli_number_and_spaces_are_dropped(platform: Platform) -> None:
    with transaction(platform.sessions) as session:
        nurse = actions.create_account(
            session,
            platform.passwords,
            actor=operator_principal(),
            login=unique("nurse"),
            display_name="Camille Test",
            profile=Profile.nurse,
            password=TEST_PASSWORD,
            national_id="0 86 60 0001 2",
        )
        physician = actions.create_account(
            session,
            platform.passwords,
            actor=operator_principal(),
            login=unique("physician"),
            display_name="Dr Camille Test",
            profile=Profile.city_physician,
            password=TEST_PASSWORD,
            national_id="8 10086000030",
        )
        assert (nurse.national_id, physician.national_id) == ("0866000012", "810086000030")
