from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from partage.security.scopes import InvalidScope, ResourceScope, Scopes, parse_scope


def test_smart_v2_scopes_are_parsed() -> None:
    scopes = Scopes.parse("openid system/DocumentReference.rs user/*.cruds patient/Observation.r")
    assert scopes.has("openid")
    assert scopes.allows("system", "DocumentReference", "r")
    assert scopes.allows("system", "DocumentReference", "s")
    assert not scopes.allows("system", "DocumentReference", "c")
    assert not scopes.allows("system", "Patient", "r")
    assert scopes.allows("user", "Patient", "d")
    assert scopes.allows("patient", "Observation", "r")
    assert not scopes.allows("patient", "Observation", "s")


def test_smart_v1_forms_read_as_v2() -> None:
    assert parse_scope("system/*.read") == ResourceScope("system", "*", "rs")
    assert parse_scope("user/Patient.write") == ResourceScope("user", "Patient", "cud")
    assert parse_scope("patient/*.*") == ResourceScope("patient", "*", "cruds")


@pytest.mark.parametrize(
    "bad",
    [
        "system/Patient.rx",
        "system/Patient.sr",
        "system/Patient.rr",
        "admin/Patient.r",
        "system/patient.r",
    ],
)
def test_malformed_scopes_are_refused(bad: str) -> None:
    with pytest.raises(InvalidScope):
        parse_scope(bad)


def test_narrowing_keeps_only_what_is_allowed() -> None:
    allowed = Scopes.parse("system/*.rs openid")
    requested = Scopes.parse("system/DocumentReference.cruds system/Patient.r openid profile")
    narrowed = requested.narrow_to(allowed)
    assert str(narrowed) == "openid system/DocumentReference.rs system/Patient.r"


def test_narrowing_across_contexts_gives_nothing() -> None:
    assert Scopes.parse("user/*.rs").narrow_to(Scopes.parse("system/*.cruds")).resources == ()


@given(st.sets(st.sampled_from("cruds"), min_size=1), st.sampled_from(["Patient", "*"]))
def test_a_scope_round_trips(perms: set[str], resource: str) -> None:
    ordered = "".join(c for c in "cruds" if c in perms)
    text = f"system/{resource}.{ordered}"
    assert str(Scopes.parse(text)) == text
