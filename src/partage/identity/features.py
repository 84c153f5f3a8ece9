"""The matching form of a local identity, computed once per identity, and its comparisons.

Each comparison turns a pair of identities into an agreement level (higher agrees more;
None when a side lacks the trait). The Fellegi–Sunter model (`model`) weighs the levels.
"""

from __future__ import annotations

from datetime import date

from rapidfuzz.distance import OSA, JaroWinkler

from partage.identity.normalize import (
    address_form,
    compact,
    core,
    fold,
    given_name_list,
    is_placeholder,
    nir_consistent,
    phone_number,
    phonetic,
    swapped,
    tokens,
)
from partage.identity.traits import IdentityStatus, IdentityTraits, Sex

_similarity = JaroWinkler.normalized_similarity
_distance = OSA.distance


class Features:
    """Normalised traits of one identity (slots: a million of these are held in memory)."""

    __slots__ = (
        "address",
        "birth",
        "birth_core",
        "birth_phon",
        "birth_tokens",
        "city",
        "dept",
        "dob",
        "dob_placeholder",
        "first",
        "first_phon",
        "first_tokens",
        "given",
        "house",
        "ins",
        "ins_consistent",
        "ins_qualified",
        "ins_trusted",
        "phone",
        "place",
        "postal",
        "sex",
        "used",
        "used_phon",
    )

    def __init__(self, traits: IdentityTraits, status: IdentityStatus) -> None:
        name_tokens = tokens(traits.birth_family_name)
        self.birth = "".join(name_tokens)
        self.birth_tokens = frozenset(t for t in name_tokens if len(t) > 1)
        self.birth_core = core(name_tokens)
        self.birth_phon = phonetic(self.birth) if self.birth else ""
        self.used = compact(traits.used_family_name)
        if self.used == self.birth:
            self.used = ""
        self.used_phon = phonetic(self.used) if self.used else ""
        self.given = given_name_list(traits.given_names)
        self.first = self.given[0] if self.given else ""
        self.first_phon = phonetic(self.first) if self.first else ""
        first_raw = traits.given_names[0] if traits.given_names else ""
        self.first_tokens = frozenset(fold(first_raw).split())
        self.sex = traits.sex.value if traits.sex is not Sex.unknown else ""
        self.dob = traits.birth_date
        self.dob_placeholder = traits.birth_date is not None and is_placeholder(traits.birth_date)
        self.place = traits.birth_place_code.strip().upper()
        if self.place and self.place == traits.postal_code.strip():
            # The postal code typed where the INSEE code belongs: not a birth place.
            self.place = ""
        self.dept = self.place[:3] if self.place.startswith("99") else self.place[:2]
        self.address = address_form(traits.address)
        self.house = _house_number(self.address)
        self.postal = traits.postal_code.strip()
        self.city = compact(traits.city)
        self.phone = phone_number(traits.phone)
        self.ins = traits.ins
        self.ins_qualified = bool(traits.ins) and status is IdentityStatus.qualified
        self.ins_consistent = bool(traits.ins) and nir_consistent(traits.ins, self.sex, self.dob)
        # An INS from the national teleservice (RECUP or QUAL) is the person's; one typed
        # in by hand (PROV, VALI) may be someone else's.
        self.ins_trusted = bool(traits.ins) and status in (
            IdentityStatus.qualified,
            IdentityStatus.recovered,
        )


# The comparisons, in a fixed order; each level list is what the explanation shows.
COMPARISONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "family_name",
        (
            "different",
            "similar",
            "birth/used name crossed",
            "typo",
            "same sound",
            "same without particles",
            "identical",
        ),
    ),
    (
        "given_names",
        (
            "different",
            "similar",
            "same sound or one typo",
            "truncated or compound",
            "found among the other's given names",
            "reordered",
            "same first, other given names differ",
            "same first given name",
            "all given names identical",
        ),
    ),
    (
        "birth_date",
        (
            "different",
            "one digit or part differs",
            "one side 01/01",
            "day and month swapped",
            "identical 01/01",
            "identical",
        ),
    ),
    ("sex", ("different", "identical")),
    ("birth_place", ("different", "same department", "identical")),
    ("address", ("different", "same commune", "same address")),
    ("phone", ("different", "identical")),
    ("ins", ("different", "one character differs", "identical")),
    ("used_name", ("different", "identical")),
)
FAMILY, GIVEN, BIRTH_DATE, SEX, PLACE, ADDRESS, PHONE, INS, USED = range(len(COMPARISONS))
FAMILY_IDENTICAL = 6
GIVEN_FOUND_AMONG = 4
GIVEN_OTHERS_DIFFER = 6  # the same first given name, none of the others shared
GIVEN_IDENTICAL = 7  # the first given name (levels above it agree even more)
DATE_IDENTICAL = 5

Levels = tuple[int | None, ...]


def compare(a: Features, b: Features) -> Levels:
    family = _family(a, b)
    given = _given(a, b)
    if family == 0 and given == 0:
        # Family and given names typed in each other's field.
        crossed = _crossed_names(a, b)
        if crossed:
            family, given = crossed
    return (
        family,
        given,
        _birth_date(a.dob, b.dob, a.dob_placeholder, b.dob_placeholder),
        (1 if a.sex == b.sex else 0) if a.sex and b.sex else None,
        _place(a, b),
        _address(a, b),
        (1 if a.phone == b.phone else 0) if a.phone and b.phone else None,
        _identifier(a.ins, b.ins),
        (1 if a.used == b.used or _similarity(a.used, b.used) >= 0.92 else 0)
        if a.used and b.used
        else None,
    )


def _identifier(a: str, b: str) -> int | None:
    if not a or not b:
        return None
    if a == b:
        return 2
    # One typo. A valid NIR's key catches single typos, so among checked INS this level
    # is empty; it matters for identifiers without a key.
    return 1 if len(a) == len(b) and _distance(a, b) <= 1 else 0


def _family(a: Features, b: Features) -> int | None:
    if not a.birth or not b.birth:
        return None
    if a.birth == b.birth:
        return 6
    if a.birth_core == b.birth_core or (
        a.birth_tokens
        and b.birth_tokens
        and (a.birth_tokens <= b.birth_tokens or b.birth_tokens <= a.birth_tokens)
    ):
        return 5
    if a.birth_phon == b.birth_phon:
        return 4
    similarity = _similarity(a.birth, b.birth)
    if similarity >= 0.92 or _distance(a.birth, b.birth) <= 1:
        return 3
    if (a.used and a.used in (b.birth, b.used)) or (b.used and b.used == a.birth):
        return 2
    if similarity >= 0.80:
        return 1
    return 0


def _given(a: Features, b: Features) -> int | None:
    if not a.first or not b.first:
        return None
    if a.first == b.first:
        if len(a.given) > 1 and len(b.given) > 1:
            if a.given == b.given:
                return 8
            # "Christophe Georges" and "Christophe Lucien": two namesakes, not one person
            # whose second name was dropped.
            if not _share_a_name(a.given[1:], b.given[1:]):
                return GIVEN_OTHERS_DIFFER
        return 7
    if len(a.given) > 1 and len(b.given) > 1 and _nested(a.given, b.given):
        # The same names in another order (each one found, allowing a typo).
        return 5
    shorter, longer = sorted((a, b), key=lambda side: len(side.first))
    if (
        (a.first_tokens and b.first_tokens)
        and (a.first_tokens < b.first_tokens or b.first_tokens < a.first_tokens)
    ) or (len(shorter.first) >= 3 and longer.first.startswith(shorter.first)):
        if _another_compound(shorter, longer.first) and not _share_a_name(
            shorter.given[1:], longer.given[1:]
        ):
            return GIVEN_OTHERS_DIFFER
        return 3
    if a.first_phon == b.first_phon or _distance(a.first, b.first) <= 1:
        return 2
    if a.first in b.given or b.first in a.given:
        # "Paul" and "Jean Paul": the same man under his second name — or his twin.
        return 4
    similarity = _similarity(a.first, b.first)
    if similarity >= 0.92:
        return 2
    if similarity >= 0.80:
        return 1
    return 0


def _another_compound(shorter: Features, longer: str) -> bool:
    """ "JEAN MICHEL" against "JEAN-MARIE": the same first part, then each its own second name:
    two brothers' compound names (when nothing else is shared), not one name split
    differently."""
    rest = longer[len(shorter.first) :] if longer.startswith(shorter.first) else ""
    if not rest or len(shorter.given) < 2:
        return False
    second = shorter.given[1]
    return not (second.startswith(rest) or rest.startswith(second))


def _share_a_name(a: tuple[str, ...], b: tuple[str, ...]) -> bool:
    """One name in both lists, allowing an initial ("M." for MADELEINE), a shortened form
    and a typo: what a registration desk does to a second given name."""
    for x in a:
        for y in b:
            shorter, longer = sorted((x, y), key=len)
            if longer.startswith(shorter) or (len(shorter) >= 4 and _distance(x, y) <= 1):
                return True
    return False


def _house_number(address: str) -> str:
    """The digits of an address: neighbours share a street, not a number."""
    return "".join(ch for ch in address if ch.isdigit())


def _nested(a: tuple[str, ...], b: tuple[str, ...]) -> bool:
    """Every name of the shorter list is in the longer one (one typo allowed), and the
    first names cross: a reordering, not two siblings sharing a middle name."""
    shorter, longer = sorted((a, b), key=len)
    if not all(any(_distance(x, y) <= 1 for y in longer) for x in shorter):
        return False
    return any(_distance(a[0], y) <= 1 for y in b) and any(_distance(b[0], y) <= 1 for y in a)


def _crossed_names(a: Features, b: Features) -> tuple[int, int] | None:
    if not (a.birth and a.first and b.birth and b.first):
        return None
    if _similarity(a.birth, b.first) >= 0.92 and _similarity(a.first, b.birth) >= 0.92:
        return (3, 2)
    return None


def _birth_date(
    a: date | None, b: date | None, a_placeholder: bool, b_placeholder: bool
) -> int | None:
    if a is None or b is None:
        return None
    if a == b:
        return 4 if a_placeholder else 5
    if swapped(a) == b:
        return 3
    if (a_placeholder or b_placeholder) and a.year == b.year:
        return 2
    same = (a.year == b.year) + (a.month == b.month) + (a.day == b.day)
    if same == 2 and (a.year == b.year or year_typo(a.year, b.year)):
        return 1
    return 0


def year_typo(x: int, y: int) -> bool:
    """One digit differs, or two adjacent digits are exchanged (1957/1975)."""
    sx, sy = f"{x:04d}", f"{y:04d}"
    diffs = [i for i in range(4) if sx[i] != sy[i]]
    if len(diffs) == 1:
        return True
    return (
        len(diffs) == 2
        and diffs[1] == diffs[0] + 1
        and sx[diffs[0]] == sy[diffs[1]]
        and sx[diffs[1]] == sy[diffs[0]]
    )


def _place(a: Features, b: Features) -> int | None:
    if not a.place or not b.place:
        return None
    if a.place == b.place:
        return 2
    return 1 if a.dept == b.dept else 0


def _address(a: Features, b: Features) -> int | None:
    if not (a.address or a.postal or a.city) or not (b.address or b.postal or b.city):
        return None
    same_commune = (a.postal and a.postal == b.postal) or (a.city and a.city == b.city)
    same_postal = not a.postal or not b.postal or a.postal == b.postal
    if (
        a.address
        and b.address
        and same_postal
        and a.house == b.house
        and (a.address == b.address or _similarity(a.address, b.address) >= 0.9)
    ):
        return 2
    return 1 if same_commune else 0
