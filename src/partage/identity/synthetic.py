"""Synthetic French patients as several establishments record them, with the ground truth.

The identity matcher is patient-safety critical: a false merge shows one patient's record
to another's doctors. It is measured on this data, so the data has to be hard in the ways
real registration desks are: typos on AZERTY keyboards, lost accents, married names in the
birth-name field, swapped day and month, truncated given names, moves, placeholders; and
the people a matcher must NOT merge: twins, father and son of the same name, namesakes born
the same year, siblings sharing an address and a phone. Every record says which person it
is (`SyntheticRecord.person`) and which phenomena it carries (`tags`), and the persons'
relations are listed, so a benchmark can report errors by cause.

A qualified or recovered record carries the traits the INSi teleservice returns (upper case,
no accents, every given name) and the person's true INS. Generation is deterministic for a
seed (`random.Random`, dates relative to `REFERENCE_DATE`), and cheap per record so that a
million records take about a minute.
"""

from __future__ import annotations

import csv
import random
from bisect import bisect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from itertools import accumulate, combinations
from pathlib import Path
from typing import IO, Generic, TypeVar

from partage.directory.vienne import COMMUNES, STREET_TYPES, STREETS
from partage.identity import french_names as fr
from partage.identity.ins import make_nir
from partage.identity.traits import IdentityStatus, IdentityTraits, Sex, SourceRecord
from partage.identity.traits import IdentityStatus as S

CSV_HEADER = (
    "local_id", "birth_family_name", "used_family_name", "given_names", "sex", "birth_date",
    "birth_place_code", "address", "postal_code", "city", "phone", "ins",
)  # fmt: skip
REFERENCE_DATE = date(2025, 6, 30)  # "today" for ages, so that a seed always gives the same data

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class SyntheticRecord:
    record: SourceRecord
    person: int  # ground truth: records with the same number are the same person
    tags: tuple[str, ...] = ()  # the phenomena this record carries ("twin", "date_swap"...)


@dataclass(frozen=True, slots=True)
class Relation:
    """Two different persons a matcher could confuse: twins, parent_child, siblings,
    namesakes (same common name and birth year), spouses."""

    kind: str
    first: int
    second: int


@dataclass(frozen=True)
class SyntheticPopulation:
    records: list[SyntheticRecord]
    truth: list[IdentityTraits]  # each person's true traits, indexed by person number
    relations: list[Relation]


@dataclass(frozen=True)
class Rates:
    """How often each phenomenon happens. Person-level shares are of persons; record-level
    ones are the chance per record where it applies (a day/month swap needs a day <= 12).
    Identity-validated (VALI) records get a quarter of the trait errors."""

    same_source: float = 0.04  # multi-record persons with two records in one establishment
    twins: float = 0.012
    parent_homonym: float = 0.01  # father and son (mother and daughter) sharing a given name
    siblings: float = 0.04
    namesakes: float = 0.02  # same common family and given name, same birth year
    couples: float = 0.06
    married: float = 0.6  # adult women using a spouse's name (fewer under 35)
    moves: float = 0.2  # multi-record persons whose later records have a new address
    typo: float = 0.04  # per name field
    phonetic: float = 0.015
    name_form: float = 0.35  # particle, apostrophe or hyphen written otherwise
    used_as_birth: float = 0.12  # married name typed in the birth-name field
    used_dropped: float = 0.25
    first_given_only: float = 0.35
    middle_dropped: float = 0.1
    given_swapped: float = 0.03
    given_initial: float = 0.02  # a later given name reduced to its initial
    compound_variant: float = 0.3  # "Jean-Pierre" as "Jean Pierre", "Jeanpierre", "Jean"
    accent_loss: float = 0.1  # besides the establishments whose software has no accents
    accent_gain: float = 0.3  # a name registered without its usual accent, typed with it
    date_swap: float = 0.02
    date_placeholder: float = 0.008  # day and month unknown: 1 January
    date_typo: float = 0.015
    date_missing: float = 0.004
    sex_unknown: float = 0.005
    sex_wrong: float = 0.002
    place_missing: float = 0.3
    place_postal: float = 0.02  # the postal code typed instead of the INSEE code
    address_missing: float = 0.05
    phone_missing: float = 0.25
    qualified: float = 0.3
    recovered: float = 0.08
    validated: float = 0.12  # the rest is provisional
    typed_ins: float = 0.05  # provisional records with the true INS typed from the card
    wrong_ins: float = 0.004  # provisional records with a mistyped INS (its key fails)
    parent_ins: float = 0.1  # minors' provisional records with their parent's INS

    @property
    def provisional_share(self) -> float:
        return max(0.0, 1 - self.qualified - self.recovered - self.validated)


DEFAULT_RATES = Rates()


class _Weighted(Generic[T]):
    """Weighted draws by bisection over cumulative weights: cheap enough per record."""

    def __init__(self, items: Sequence[T], weights: Iterable[float]) -> None:
        self.items = tuple(items)
        self.cumulative = list(accumulate(weights))

    def draw(self, rng: random.Random) -> T:
        index = bisect(self.cumulative, rng.random() * self.cumulative[-1])
        return self.items[min(index, len(self.items) - 1)]


def _family_names() -> _Weighted[tuple[str, str]]:
    """Half the draws among the real names, with a Zipf-like weight; half in a long tail of
    about 3,000 generated western names, each rare. The head is heavier than France's
    (MARTIN about 0.8 % against 0.35 %, the top 100 a third of people against 7 %): with a
    few hundred real names it cannot be otherwise, and collisions are what is measured."""
    real = fr.FAMILY_NAMES
    head = [1 / (rank + 20) ** 0.9 for rank in range(len(real))]
    known = {name for name, _ in real}
    tail = sorted(
        {stem + end for stem in fr.TAIL_STEMS for end in fr.TAIL_ENDINGS}
        | {stem + middle + end for stem in fr.TAIL_STEMS for middle in fr.TAIL_MIDDLES
           for end in fr.TAIL_SHORT_ENDINGS if not end.startswith(middle[0])}
        - known
    )  # fmt: skip
    weight = sum(head) / len(tail)
    return _Weighted((*real, *[(name, "fr") for name in tail]), (*head, *[weight] * len(tail)))


_FAMILY = _family_names()
_GIVEN = {
    key: _Weighted(pool, (1 / (r + 1) ** 0.7 for r in range(len(pool))))
    for key, pool in fr.GIVEN_NAMES.items()
}
_AGES = _Weighted(
    range(101),
    (
        1.0 if a < 20 else 1.05 if a < 60 else 1.2 if a < 80 else 0.8 if a < 90 else 0.25
        for a in range(101)
    ),
)
_VIENNE = _Weighted(range(len(COMMUNES)), (c.population for c in COMMUNES))
_MATERNITIES = _Weighted(("86194", "86066", "86137", "86165", "86078"), (65, 20, 5, 6, 4))
_ELSEWHERE = _Weighted(
    [code for code, _ in fr.OTHER_BIRTH_PLACES], [w for _, w in fr.OTHER_BIRTH_PLACES]
)
_POSTAL_BY_INSEE = {c.insee_code: c.postal_code for c in COMMUNES}
_FOREIGN = {"pt", "es", "it", "mg", "af", "vn", "tr"}
# Renderings: [format][index] -> text; street formats: upper, mixed case, abbreviated type.
_STREETS = [
    [f"{STREET_TYPES[t].upper()} {n}" for t, n in STREETS],
    [f"{STREET_TYPES[t].lower()} {fr.mixed_case(n)}" for t, n in STREETS],
    [f"{t} {n}" for t, n in STREETS],
]
_CITIES = [
    [c.name.upper() for c in COMMUNES],
    [c.name for c in COMMUNES],
    [fr.short_city(c.name) for c in COMMUNES],
]


@dataclass(slots=True)
class _Home:
    number: int
    street: int
    commune: int
    landline: str
    source: int  # the establishment the household goes to first


@dataclass(slots=True)
class _Person:
    number: int
    sex: Sex
    family: str
    given: tuple[str, ...]
    birth: date
    place: str
    origin: str
    home: _Home
    ins: str = ""
    used: str = ""
    mobile: str = ""
    contact: str = ""  # a parent's mobile, for children without their own
    parent_ins: str = ""
    tags: list[str] = field(default_factory=list)

    @property
    def age(self) -> int:
        return (REFERENCE_DATE - self.birth).days // 365


@dataclass(frozen=True, slots=True)
class _Style:
    """How an establishment's software and staff write identities."""

    ascii: bool  # no accents anywhere (legacy system)
    given_upper: bool
    family_title: bool  # "Dupont" rather than "DUPONT"
    phone: int
    address: int
    ipp: int
    ipp_start: int

    @classmethod
    def of(cls, seed: int, source: str) -> _Style:
        rng = random.Random(f"{seed}/{source}")  # noqa: S311 - reproducible synthetic data
        return cls(
            rng.random() < 0.35,
            rng.random() < 0.5,
            rng.random() < 0.15,
            rng.randrange(4),
            rng.randrange(3),
            rng.randrange(3),
            rng.randrange(10_000, 500_000),
        )


def _phone(digits: str, form: int) -> str:
    pairs = [digits[i : i + 2] for i in range(0, 10, 2)]
    if form == 0:
        return " ".join(pairs)
    if form == 1:
        return digits
    if form == 2:
        return "+33" + digits[1:]
    return ".".join(pairs)


class _Generator:
    def __init__(self, rng: random.Random, rates: Rates, sources: Sequence[str], seed: int):
        self.rng, self.rates, self.sources = rng, rates, list(sources)
        self.styles = [_Style.of(seed, source) for source in sources]
        self.source_draw = _Weighted(
            range(len(sources)), (1 / (i + 1) ** 0.5 for i in range(len(sources)))
        )
        statuses = (S.provisional, S.recovered, S.validated, S.qualified)
        shares = (rates.provisional_share, rates.recovered, rates.validated, rates.qualified)
        self.status_draw = _Weighted(statuses, shares)
        self.people: list[_Person] = []
        self.relations: list[Relation] = []
        self.nirs: set[str] = set()

    # --- persons ---------------------------------------------------------------------

    def population(self, count: int) -> None:
        r, rng = self.rates, self.rng
        events = (
            (self._twins, r.twins / 2, 2),
            (self._parent_homonym, r.parent_homonym / 2, 2),
            (self._siblings, r.siblings / 2.6, 4),
            (self._namesakes, r.namesakes / 3, 5),
            (self._couple, r.couples / 2, 2),
        )
        while len(self.people) < count:
            left, u = count - len(self.people), rng.random()
            for event, chance, size in events:
                if u < chance and left >= size:
                    event(left)
                    break
                u -= chance
            else:
                self._person()

    def _person(
        self,
        *,
        sex: Sex | None = None,
        age: int | None = None,
        birth: date | None = None,
        family: tuple[str, str] | None = None,
        home: _Home | None = None,
        place: str = "",
        first: str = "",
        order: int = 0,
    ) -> _Person:
        rng = self.rng
        sex = sex or (Sex.female if rng.random() < 0.52 else Sex.male)
        if birth is None:
            age = _AGES.draw(rng) if age is None else age
            birth = REFERENCE_DATE - timedelta(days=int(age * 365.25) + rng.randrange(365))
        name, origin = family or _FAMILY.draw(rng)
        if family is None and birth.year >= 2005 and rng.random() < 0.08:
            name = f"{name}-{_FAMILY.draw(rng)[0]}"  # both parents' names, allowed since 2005
        home = home or self._home()
        person = _Person(
            len(self.people),
            sex,
            name,
            self._given(sex, birth.year, origin, first),
            birth,
            place or self._birth_place(origin, birth),
            origin,
            home,
        )
        person.ins = self._nir(person, order)
        if person.age >= 13:
            person.mobile = f"0{rng.choice('67')}{rng.randrange(10**8):08d}"
        married = self.rates.married * (0.6 if person.age < 35 else 1.2)
        if sex is Sex.female and person.age >= 25 and rng.random() < married:
            self._marry(person)
        self.people.append(person)
        return person

    def _marry(self, woman: _Person) -> None:
        while not woman.used or woman.used == woman.family:
            woman.used = _FAMILY.draw(self.rng)[0]
        if "married" not in woman.tags:
            woman.tags.append("married")

    def _given(self, sex: Sex, year: int, origin: str, first: str) -> tuple[str, ...]:
        rng = self.rng
        decade = min(max(year // 10 * 10, 1920), 2020)
        if not first:
            pool = fr.ORIGIN_GIVEN_NAMES.get((origin, sex))
            first = (
                rng.choice(pool) if pool and rng.random() < 0.6 else _GIVEN[sex, decade].draw(rng)
            )
            if rng.random() < 0.1:
                first = fr.bare(first)  # registered without the accent the name usually has
        count = bisect((0.2, 0.6, 0.9) if year < 1960 else (0.3, 0.75, 0.95), rng.random()) + 1
        names = [first]
        older = fr.GIVEN_NAMES[sex, max(decade - 50, 1920)]
        while len(names) < count:
            middle = rng.choice(fr.MIDDLE_NAMES[sex] if rng.random() < 0.6 else older)
            if middle not in names and fr.bare(middle) != fr.bare(first):
                names.append(middle)
        return tuple(" ".join(names).split())

    def _birth_place(self, origin: str, birth: date) -> str:
        rng, u = self.rng, self.rng.random()
        if origin in _FOREIGN and birth.year < 2000 and u < 0.5:
            return rng.choice(fr.ORIGIN_COUNTRIES[origin])
        if u < 0.04:
            return rng.choice(fr.BIRTH_COUNTRIES)
        if u < 0.65:  # born in the Vienne: in a maternity since the 1960s, at home before
            return (
                _MATERNITIES.draw(rng)
                if birth.year >= 1965
                else COMMUNES[_VIENNE.draw(rng)].insee_code
            )
        place = _ELSEWHERE.draw(rng)
        return "79191" if place[:2] in ("2A", "2B") and birth.year < 1976 else place

    def _home(self) -> _Home:
        rng = self.rng
        landline = f"0549{rng.randrange(10**6):06d}" if rng.random() < 0.45 else ""
        return _Home(
            rng.randint(1, 140),
            rng.randrange(len(STREETS)),
            _VIENNE.draw(rng),
            landline,
            rng.randrange(len(self.sources)),
        )

    def _nir(self, person: _Person, order: int) -> str:
        while True:
            order = order if 1 <= order <= 999 else self.rng.randint(1, 999)
            nir = make_nir(
                sex=person.sex, birth_date=person.birth, birth_place_code=person.place, order=order
            )
            if nir not in self.nirs:
                self.nirs.add(nir)
                return nir
            order = 0

    def _relate(self, kind: str, tag: str, *persons: _Person) -> None:
        for person in persons:
            if tag not in person.tags:
                person.tags.append(tag)
        for a, b in combinations(persons, 2):
            self.relations.append(Relation(kind, a.number, b.number))

    def _other_first(self, sex: Sex, year: int, origin: str, *taken: _Person) -> str:
        while True:
            first = self._given(sex, year, origin, "")[0]
            if all(fr.bare(first) != fr.bare(p.given[0]) for p in taken):
                return first

    def _twins(self, _: int) -> None:
        a = self._person()
        sex = (
            a.sex if self.rng.random() < 0.65 else (Sex.male if a.sex is Sex.female else Sex.female)
        )
        first = self._other_first(sex, a.birth.year, a.origin, a)
        b = self._person(
            sex=sex,
            birth=a.birth,
            family=(a.family, a.origin),
            home=a.home,
            place=a.place,
            first=first,
            order=int(a.ins[10:13]) + 1,
        )
        if a.age < 18:  # minors: the desk takes a parent's mobile, the same for both
            a.contact = b.contact = f"06{self.rng.randrange(10**8):08d}"
        self._relate("twins", "twin", a, b)

    def _parent_homonym(self, _: int) -> None:
        rng = self.rng
        parent = self._person(age=rng.randint(52, 92))
        birth = parent.birth + timedelta(days=rng.randint(25 * 365, 35 * 365))
        family = (parent.family, parent.origin)
        if parent.sex is Sex.female:  # the daughter's birth name is the mother's used name
            self._marry(parent)
            family = (parent.used, "fr")
        young = (REFERENCE_DATE - birth).days < 30 * 365
        home = parent.home if rng.random() < (0.7 if young else 0.25) else None
        child = self._person(
            sex=parent.sex,
            birth=birth,
            family=family,
            home=home,
            place=parent.place if rng.random() < 0.5 else "",
            first=parent.given[0],
        )
        self._relate("parent_child", "parent_homonym", parent)
        self._relate("parent_child", "child_homonym", child)
        self.relations.append(Relation("parent_child", parent.number, child.number))

    def _siblings(self, _: int) -> None:
        rng = self.rng
        eldest = self._person(age=rng.randint(1, 60))
        kids = [eldest]
        for _i in range(rng.choice((1, 1, 2))):
            days = (kids[-1].birth - date(1900, 1, 1)).days + rng.randint(400, 8 * 365)
            birth = date(1900, 1, 1) + timedelta(days=days)
            if birth >= REFERENCE_DATE:
                break
            sex = Sex.female if rng.random() < 0.5 else Sex.male
            first = self._other_first(sex, birth.year, eldest.origin, *kids)
            shared = kids[-1].age < 25 or rng.random() < 0.2
            kids.append(
                self._person(
                    sex=sex,
                    birth=birth,
                    family=(eldest.family, eldest.origin),
                    home=eldest.home if shared else None,
                    first=first,
                )
            )
        self._relate("siblings", "sibling", *kids)
        if kids[-1].age < 18:  # minors: their mother is a patient too, and her number is theirs
            mother = self._person(
                sex=Sex.female, age=eldest.age + rng.randint(22, 40), home=eldest.home
            )
            if mother.family != eldest.family:
                mother.used = eldest.family
                if "married" not in mother.tags:
                    mother.tags.append("married")
            for kid in kids:
                self.relations.append(Relation("parent_child", mother.number, kid.number))
                if kid.age < 18:
                    kid.parent_ins, kid.contact = mother.ins, mother.mobile

    def _namesakes(self, left: int) -> None:
        rng = self.rng
        family = fr.FAMILY_NAMES[rng.randrange(12)]
        sex = Sex.female if rng.random() < 0.5 else Sex.male
        year = REFERENCE_DATE.year - rng.randint(20, 85)
        first = fr.GIVEN_NAMES[sex, year // 10 * 10][rng.randrange(3)]
        group: list[_Person] = []
        for _i in range(rng.randint(2, min(5, left))):
            birth = date(year, 1, 1) + timedelta(days=rng.randrange(365))
            if group and rng.random() < 0.3:
                birth = group[0].birth  # born the very same day, by chance
            place = ""
            while not place or any(p.place == place for p in group):
                place = self._birth_place("fr", birth)
            group.append(
                self._person(sex=sex, birth=birth, family=family, first=first, place=place)
            )
        self._relate("namesakes", "namesake", *group)

    def _couple(self, _: int) -> None:
        rng = self.rng
        wife = self._person(sex=Sex.female, age=rng.randint(25, 88))
        family = _FAMILY.draw(rng)
        while family[0] == wife.family:
            family = _FAMILY.draw(rng)
        age = max(18, wife.age + rng.randint(-3, 6))
        husband = self._person(sex=Sex.male, age=age, family=family, home=wife.home)
        wife.used = husband.family
        if "married" not in wife.tags:
            wife.tags.append("married")
        self._relate("spouses", "spouse", wife, husband)

    # --- records ---------------------------------------------------------------------

    def records_of(
        self, p: _Person, duplicate_rate: float, max_records: int, out: list[_Draft]
    ) -> None:
        """The person's records in the order they were made: establishments visited (a few
        twice), an address and maybe a mobile changed by a move between two visits."""
        rng, r = self.rng, self.rates
        n = 1
        if rng.random() < duplicate_rate:
            n = 2
            while n < max_records and rng.random() < 0.4:
                n += 1
        sources = self._sources(n, p.home.source)
        if n >= 2 and rng.random() < r.same_source:
            sources[-1] = sources[rng.randrange(n - 1)]
        homes, mobiles = [p.home] * n, [p.mobile] * n
        if n >= 2 and rng.random() < r.moves:
            cut = rng.randint(1, n - 1)
            homes[cut:] = [self._home()] * (n - cut)
            if p.mobile and rng.random() < 0.3:
                mobiles[cut:] = [f"07{rng.randrange(10**8):08d}"] * (n - cut)
        seen: set[int] = set()
        for source, home, mobile in zip(sources, homes, mobiles, strict=True):
            tags = list(p.tags)
            if source in seen:
                tags.append("same_source_duplicate")
            seen.add(source)
            if home is not p.home:
                tags.append("moved")
            traits, status = self._traits(p, self.styles[source], home, mobile, tags)
            out.append((source, traits, status, p.number, tuple(dict.fromkeys(tags))))

    def _sources(self, n: int, preferred: int) -> list[int]:
        """Distinct establishments (relatives often share the first one), unless there are
        more records than establishments."""
        chosen = [preferred] if self.rng.random() < 0.5 else []
        while len(chosen) < n:
            source = self.source_draw.draw(self.rng)
            if source not in chosen or len(chosen) >= len(self.sources):
                chosen.append(source)
        return chosen

    def _traits(
        self, p: _Person, style: _Style, home: _Home, mobile: str, tags: list[str]
    ) -> tuple[IdentityTraits, IdentityStatus]:
        rng, r = self.rng, self.rates
        status = self.status_draw.draw(rng)
        used = p.used
        if used and rng.random() < r.used_dropped:
            used = _tag(tags, "used_dropped", "")
        if status in (IdentityStatus.qualified, IdentityStatus.recovered):
            # The INSi traits: upper case, no accents, every given name; and the true INS.
            family, given = fr.bare(p.family), tuple(fr.bare(g).upper() for g in p.given)
            sex, place, ins = p.sex, p.place, p.ins
            birth: date | None = p.birth
        else:
            f = 0.25 if status is IdentityStatus.validated else 1.0
            family = p.family
            if used and rng.random() < r.used_as_birth * f:
                family = _tag(tags, "used_as_birth", used)
            family = self._family(family, style, f, tags)
            given = self._given_names(p.given, style, f, tags)
            sex, birth, place = (
                self._sex(p.sex, f, tags),
                self._date(p.birth, f, tags),
                self._place(p.place, f, tags),
            )
            ins = self._typed_ins(p, tags) if status is IdentityStatus.provisional else ""
        address, postal, city = self._address(home, style, tags)
        traits = IdentityTraits(
            family,
            given,
            sex,
            birth,
            self._render_family(used, style, tags) if used else "",
            place,
            address,
            postal,
            city,
            self._phone(p, home, mobile, style, tags),
            ins,
        )
        return traits, status

    def _family(self, name: str, style: _Style, f: float, tags: list[str]) -> str:
        if self.rng.random() < self.rates.name_form * f:
            variant = fr.name_variant(self.rng, name)
            if variant != name:
                name = _tag(tags, "name_form", variant)
        return self._misspell(self._render_family(name, style, tags), f, tags)

    def _render_family(self, name: str, style: _Style, tags: list[str]) -> str:
        if style.ascii or self.rng.random() < self.rates.accent_loss:
            bare = fr.bare(name)
            if bare != name:
                name = _tag(tags, "accent_loss", bare)
        return name.title() if style.family_title else name

    def _given_names(
        self, given: tuple[str, ...], style: _Style, f: float, tags: list[str]
    ) -> tuple[str, ...]:
        rng, r = self.rng, self.rates
        names = list(given)
        if len(names) > 1:
            u, only = rng.random(), r.first_given_only * (0.4 if f < 1 else 1)
            if u < only:
                names = _tag(tags, "first_given_only", names[:1])
            elif u < only + r.middle_dropped * f:
                if len(names) > 2:  # with two, dropping the second is "first only"
                    del names[rng.randrange(1, len(names))]
                    tags.append("middle_dropped")
            elif u < only + (r.middle_dropped + r.given_initial) * f:
                i = rng.randrange(1, len(names))
                names[i] = _tag(tags, "given_initial", names[i][0] + ".")
            if len(names) > 1 and rng.random() < r.given_swapped * f:
                names[0], names[1] = names[1], names[0]
                tags.append("given_swapped")
        out = []
        for i, name in enumerate(names):
            if "-" in name and rng.random() < r.compound_variant * f:
                head, _, rest = name.partition("-")
                v = rng.random()
                name = f"{head} {rest}" if v < 0.6 else head + rest.lower() if v < 0.8 else head
                tags.append("compound_variant")
            accented = fr.ACCENTED_GIVEN_NAMES.get(name)
            if accented and not style.ascii and rng.random() < r.accent_gain:
                name = _tag(tags, "accent_gain", accented)
            elif style.ascii or rng.random() < r.accent_loss:
                bare = fr.bare(name)
                if bare != name:
                    name = _tag(tags, "accent_loss", bare)
            if style.given_upper:
                name = name.upper()
            out.append(self._misspell(name, f, tags) if i == 0 else name)
        return tuple(" ".join(out).split())

    def _misspell(self, text: str, f: float, tags: list[str]) -> str:
        u = self.rng.random()
        if u < self.rates.typo * f:
            text = _tag(tags, "typo", fr.typo(self.rng, text))
        elif u < (self.rates.typo + self.rates.phonetic) * f:
            variant = fr.phonetic_variant(self.rng, text)
            if variant != text:
                text = _tag(tags, "phonetic", variant)
        return text

    def _sex(self, sex: Sex, f: float, tags: list[str]) -> Sex:
        u = self.rng.random()
        if u < self.rates.sex_unknown * f:
            return _tag(tags, "sex_unknown", Sex.unknown)
        if u < (self.rates.sex_unknown + self.rates.sex_wrong) * f:
            return _tag(tags, "sex_wrong", Sex.male if sex is Sex.female else Sex.female)
        return sex

    def _date(self, d: date, f: float, tags: list[str]) -> date | None:
        rng, r = self.rng, self.rates
        if d.day <= 12 and d.day != d.month and rng.random() < r.date_swap * f:
            return _tag(tags, "date_swap", date(d.year, d.day, d.month))
        if (d.month, d.day) != (1, 1) and rng.random() < r.date_placeholder * f:
            return _tag(tags, "date_placeholder", date(d.year, 1, 1))
        if rng.random() < r.date_typo * f:
            digits = f"{d.year:04d}{d.month:02d}{d.day:02d}"
            for _ in range(8):  # one digit wrong, the result still a plausible date
                i = rng.randrange(2, 8)
                typed = digits[:i] + str(rng.randrange(10)) + digits[i + 1 :]
                try:
                    wrong = date(int(typed[:4]), int(typed[4:6]), int(typed[6:]))
                except ValueError:
                    continue
                if wrong != d and wrong <= REFERENCE_DATE:
                    return _tag(tags, "date_typo", wrong)
        if rng.random() < r.date_missing * f:
            return _tag(tags, "date_missing", None)
        return d

    def _place(self, place: str, f: float, tags: list[str]) -> str:
        if self.rng.random() < self.rates.place_missing * (0.5 if f < 1 else 1):
            return _tag(tags, "place_missing", "")
        postal = _POSTAL_BY_INSEE.get(place, place)
        if postal != place and self.rng.random() < self.rates.place_postal * f:
            return _tag(tags, "place_postal", postal)
        return place

    def _typed_ins(self, p: _Person, tags: list[str]) -> str:
        """What a clerk typed in the INS field of a provisional identity, if anything."""
        rng, r = self.rng, self.rates
        if rng.random() < r.wrong_ins:
            i = rng.randrange(7, 13)  # a commune or order digit: only the key can tell
            digit = str((int(p.ins[i]) + rng.randint(1, 9)) % 10)
            return _tag(tags, "wrong_ins", p.ins[:i] + digit + p.ins[i + 1 :])
        if p.parent_ins and p.age < 18 and rng.random() < r.parent_ins:
            return _tag(tags, "ins_of_parent", p.parent_ins)
        if rng.random() < r.typed_ins:
            return _tag(tags, "typed_ins", p.ins)
        return ""

    def _address(self, home: _Home, style: _Style, tags: list[str]) -> tuple[str, str, str]:
        rng = self.rng
        if rng.random() < self.rates.address_missing:
            return _tag(tags, "address_missing", ("", "", ""))
        form = style.address if rng.random() < 0.85 else rng.randrange(3)
        address = f"{home.number} {_STREETS[form][home.street]}"
        city = _CITIES[form][home.commune]
        if style.ascii:
            address, city = fr.bare(address), fr.bare(city)
        return address, COMMUNES[home.commune].postal_code, city

    def _phone(self, p: _Person, home: _Home, mobile: str, style: _Style, tags: list[str]) -> str:
        rng = self.rng
        number = mobile or p.contact or home.landline
        if home.landline and number != home.landline and rng.random() < 0.3:
            number = home.landline
        if not number or rng.random() < self.rates.phone_missing:
            return _tag(tags, "phone_missing", "")
        return _phone(number, style.phone if rng.random() < 0.8 else rng.randrange(4))


_Draft = tuple[int, IdentityTraits, IdentityStatus, int, tuple[str, ...]]


def _tag(tags: list[str], name: str, value: T) -> T:
    """`value`, noting on the record that phenomenon `name` produced it."""
    tags.append(name)
    return value


def _truth(p: _Person) -> IdentityTraits:
    home = p.home
    return IdentityTraits(
        p.family,
        p.given,
        p.sex,
        p.birth,
        p.used,
        p.place,
        f"{home.number} {_STREETS[0][home.street]}",
        COMMUNES[home.commune].postal_code,
        _CITIES[0][home.commune],
        p.mobile or p.contact or home.landline,
        p.ins,
    )


def generate_population_with_truth(
    *,
    persons: int,
    sources: Sequence[str],
    seed: int = 0,
    duplicate_rate: float = 0.5,
    rates: Rates = DEFAULT_RATES,
    max_records: int = 6,
) -> SyntheticPopulation:
    """`persons` persons (relatives included) and their records across `sources`, with each
    person's true traits and the relations between persons.

    `duplicate_rate` is the share of persons with more than one record (2 to `max_records`,
    geometrically fewer); records come shuffled, with per-establishment local ids.
    """
    if persons < 0 or not 0 <= duplicate_rate <= 1 or max_records < 1:
        raise ValueError("persons >= 0, 0 <= duplicate_rate <= 1 and max_records >= 1")
    if not sources or len(set(sources)) != len(sources):
        raise ValueError("sources must be distinct establishment codes, at least one")
    rng = random.Random(seed)  # noqa: S311 - reproducible synthetic data, not secrets
    generator = _Generator(rng, rates, sources, seed)
    generator.population(persons)
    drafts: list[_Draft] = []
    for person in generator.people:
        generator.records_of(person, duplicate_rate, max_records, drafts)
    rng.shuffle(drafts)  # no ground truth leaks through the order or the local ids
    counters = [style.ipp_start for style in generator.styles]
    records = []
    for source, traits, status, person_number, tags in drafts:
        n, form = counters[source], generator.styles[source].ipp
        counters[source] += 1
        local_id = f"{n:08d}" if form == 0 else f"P{n:07d}" if form == 1 else f"86{n:07d}"
        record = SourceRecord(sources[source], local_id, traits, status)
        records.append(SyntheticRecord(record, person_number, tags))
    truth = [_truth(person) for person in generator.people]
    return SyntheticPopulation(records, truth, generator.relations)


def generate_population(
    *,
    persons: int,
    sources: Sequence[str],
    seed: int = 0,
    duplicate_rate: float = 0.5,
    rates: Rates = DEFAULT_RATES,
    max_records: int = 6,
) -> list[SyntheticRecord]:
    """The records of `generate_population_with_truth`, each with its person number."""
    return generate_population_with_truth(
        persons=persons,
        sources=sources,
        seed=seed,
        duplicate_rate=duplicate_rate,
        rates=rates,
        max_records=max_records,
    ).records


# --- the import format -------------------------------------------------------------------


def _plain(records: Iterable[SourceRecord | SyntheticRecord]) -> list[SourceRecord]:
    return [item.record if isinstance(item, SyntheticRecord) else item for item in records]


def csv_row(record: SourceRecord) -> list[str]:
    """A record as a row of the import format (given names space-separated)."""
    t = record.traits
    return [
        record.local_id,
        t.birth_family_name,
        t.used_family_name,
        " ".join(t.given_names),
        t.sex.value,
        t.birth_date.isoformat() if t.birth_date else "",
        t.birth_place_code,
        t.address,
        t.postal_code,
        t.city,
        t.phone,
        t.ins,
    ]


def write_import_csv(
    target: str | Path | IO[str], records: Iterable[SourceRecord | SyntheticRecord]
) -> None:
    """One establishment's records in the import format (UTF-8, header first).

    The format has no source column, so records of several establishments are refused
    rather than silently attributed to one: use `write_import_csvs`.
    """
    plain = _plain(records)
    found = sorted({record.source for record in plain})
    if len(found) > 1:
        raise ValueError(f"records of several sources ({', '.join(found)}): one file each")
    if isinstance(target, str | Path):
        with Path(target).open("w", encoding="utf-8", newline="") as stream:
            _write(stream, plain)
    else:
        _write(target, plain)


def _write(stream: IO[str], records: list[SourceRecord]) -> None:
    writer = csv.writer(stream)
    writer.writerow(CSV_HEADER)
    writer.writerows(csv_row(record) for record in records)


def write_import_csvs(
    directory: str | Path, records: Iterable[SourceRecord | SyntheticRecord]
) -> dict[str, Path]:
    """One import file per establishment, `<source>.csv` in `directory` (created if need be)."""
    by_source: dict[str, list[SourceRecord]] = {}
    for record in _plain(records):
        by_source.setdefault(record.source, []).append(record)
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for source, items in by_source.items():
        safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in source)
        path = folder / f"{safe}.csv"
        if path in paths.values():
            raise ValueError(f"sources {source!r} and another share the file name {path.name}")
        write_import_csv(path, items)
        paths[source] = path
    return paths
