"""The access decision: deny by default, and one answer for "absent" and "not allowed"."""

from __future__ import annotations

import uuid

import pytest

from partage.access.decision import Action, decide
from partage.security.models import Profile
from partage.security.principal import Principal, operator_principal
from partage.security.scopes import Scopes


def person(profile: Profile, establishment: uuid.UUID | None = None) -> Principal:
    return Principal(
        kind="account",
        label="x",
        account_id=uuid.uuid4(),
        profile=profile,
        establishment_id=establishment,
    )


IDENTITY = (Action.identity_read, Action.identity_manage)
# Decided person by person (decide_record, decide_deposit: tests/documents/test_access_rules.py).
RECORDS = (Action.document_read, Action.document_deposit)
ADMINISTRATION = [
    a for a in Action if a is not Action.directory_read and a not in IDENTITY and a not in RECORDS
]


@pytest.mark.parametrize("action", RECORDS)
def test_only_carers_patients_and_establishment_systems_reach_records(action: Action) -> None:
    for profile in (Profile.hospital_physician, Profile.city_physician, Profile.nurse,
                    Profile.pharmacist):  # fmt: skip
        assert decide(person(profile, uuid.uuid4()), action).allowed
    patient = decide(person(Profile.patient), action)
    assert patient.allowed is (action is Action.document_read)
    for profile in (Profile.identity_vigilance, Profile.establishment_admin,
                    Profile.territory_admin):  # fmt: skip
        assert not decide(person(profile, uuid.uuid4()), action).allowed
    bound = Principal(kind="client", label="EHR", client_id="ehr", establishment_id=uuid.uuid4())
    assert decide(bound, action).allowed
    unbound = Principal(kind="client", label="app", client_id="app")
    assert not decide(unbound, action).allowed


@pytest.mark.parametrize("action", ADMINISTRATION)
@pytest.mark.parametrize(
    "profile",
    [
        Profile.hospital_physician,
        Profile.city_physician,
        Profile.pharmacist,
        Profile.nurse,
        Profile.patient,
        Profile.identity_vigilance,
    ],
)
def test_care_profiles_have_no_administration_rights(profile: Profile, action: Action) -> None:
    assert not decide(person(profile), action).allowed


@pytest.mark.parametrize("action", ADMINISTRATION)
def test_systems_are_denied_by_default(action: Action) -> None:
    system = Principal(
        kind="client", label="EHR", client_id="ehr", scopes=Scopes.parse("system/*.cruds")
    )
    assert not decide(system, action).allowed


def test_the_directory_is_for_professionals_and_systems_not_patients() -> None:
    system = Principal(kind="client", label="EHR", client_id="ehr")
    assert decide(system, Action.directory_read).allowed
    for profile in Profile:
        allowed = decide(person(profile), Action.directory_read).allowed
        assert allowed is (profile is not Profile.patient), profile
    anonymous = Principal(kind="account", label="?", account_id=uuid.uuid4())
    assert not decide(anonymous, Action.directory_read).allowed


def test_patient_data_is_denied_to_everyone_until_its_rules_exist() -> None:
    for principal in (operator_principal(), person(Profile.territory_admin)):
        assert not decide(principal, Action.patient_data_read).allowed


def test_establishment_admins_stay_in_their_establishment() -> None:
    home, other = uuid.uuid4(), uuid.uuid4()
    admin = person(Profile.establishment_admin, home)
    allowed = decide(admin, Action.account_manage, establishment_id=home)
    assert allowed.allowed and allowed.basis == "establishment_admin"
    assert not decide(admin, Action.account_manage, establishment_id=other).allowed
    assert not decide(admin, Action.establishment_manage).allowed
    assert not decide(admin, Action.client_manage).allowed


def test_territory_admins_administer_the_territory() -> None:
    admin = person(Profile.territory_admin)
    for action in (
        Action.establishment_manage,
        Action.account_manage,
        Action.client_manage,
        Action.audit_read,
    ):
        assert decide(admin, action).allowed


def test_establishment_admins_cannot_make_or_touch_territory_admins() -> None:
    home = uuid.uuid4()
    admin = person(Profile.establishment_admin, home)
    for action in (Action.account_manage, Action.account_read):
        assert not decide(
            admin, action, establishment_id=home, target_profile=Profile.territory_admin
        ).allowed
    assert decide(
        admin,
        Action.account_manage,
        establishment_id=home,
        target_profile=Profile.hospital_physician,
    ).allowed


def test_the_patient_index_is_identity_vigilance_s_and_systems_only_read_it() -> None:
    for profile in Profile:
        for action in IDENTITY:
            allowed = decide(person(profile), action).allowed
            assert allowed is (profile is Profile.identity_vigilance), (profile, action)
    # A bearer token's principal may carry its profile as the plain string.
    officer = person(Profile.identity_vigilance)
    as_string = Principal(
        kind="account",
        label="x",
        account_id=officer.account_id,
        profile="identity_vigilance",  # type: ignore[arg-type]
    )
    assert decide(as_string, Action.identity_manage).allowed
    system = Principal(kind="client", label="PIX", client_id="pix")
    assert decide(system, Action.identity_read).allowed
    assert not decide(system, Action.identity_manage).allowed
