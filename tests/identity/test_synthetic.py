"""The synthetic French population: deterministic, true to its ground truth, and carrying
every phenomenon the matcher is measured on."""

from __future__ import annotations

import csv
import hashlib
import io
import os
import re
import subprocess
import sys
from collections import Counter, defaultdict
from datetime import date
from pathlib import Path

import pytest

from partage.directory.vienne import COMMUNES
from partage.identity import french_names as fr
from partage.identity.ins import InvalidIns, is_valid_ins, validate_ins
from partage.identity.synthetic import (
    CSV_HEADER,
    Rates,
    SyntheticPopulation,
    SyntheticRecord,
    csv_row,
    generate_population,
    generate_population_with_truth,
    write_import_csv,
    write_import_csvs,
)
from partage.identity.traits import IdentityStatus, IdentityTraits, Sex

SOURCES = ("CHU-POITIERS", "CH-CHATELLERAULT", "GHNV", "CLINIQUE-FONTAINE")
PERSONS = 8000

RECORD_PHENOMENA = {
    "typo", "phonetic", "name_form", "used_as_birth", "used_dropped", "first_given_only",
    "middle_dropped", "given_swapped", "given_initial", "compound_variant", "accent_loss",
    "accent_gain", "date_swap", "date_placeholder", "date_typo", "date_missing", "sex_unknown",
    "sex_wrong", "place_missing", "place_postal", "moved", "address_missing", "phone_missing",
    "same_source_duplicate", "wrong_ins", "typed_ins", "ins_of_parent",
}  # fmt: skip
PERSON_PHENOMENA = {
    "twin", "parent_homonym", "child_homonym", "sibling", "namesake", "spouse", "married",
}  # fmt: skip


@pytest.fixture(scope="module")
def population() -> SyntheticPopulation:
    return generate_population_with_truth(persons=PERSONS, sources=SOURCES, seed=3)


def _digest(records: list[SyntheticRecord]) -> str:
    text = "\n".join(f"{r.person}|{r.record.source}|{r.record.status}|{r.tags}" for r in records)
    rows = "\n".join(",".join(csv_row(r.record)) for r in records)
    return hashlib.sha256((text + rows).encode()).hexdigest()


def test_same_seed_same_data_other_seed_other_data() -> None:
    first = generate_population(persons=400, sources=SOURCES, seed=11)
    again = generate_population(persons=400, sources=SOURCES, seed=11)
    other = generate_population(persons=400, sources=SOURCES, seed=12)
    assert first == again
    assert _digest(first) != _digest(other)


def test_deterministic_across_processes_whatever_the_hash_seed() -> None:
    """String hashing is salted per process: nothing may depend on it."""
    script = (
        "from partage.identity.synthetic import generate_population\n"
        "from tests.identity.test_synthetic import _digest, SOURCES\n"
        "print(_digest(generate_population(persons=300, sources=SOURCES, seed=5)))\n"
    )
    digests = {
        subprocess.run(
            [sys.executable, "-c", script],
            env={**os.environ, "PYTHONHASHSEED": hash_seed},
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).parents[2],
        ).stdout.strip()
        for hash_seed in ("1", "2")
    }
    assert digests == {_digest(generate_population(persons=300, sources=SOURCES, seed=5))}


def test_counts_keys_and_ground_truth(population: SyntheticPopulation) -> None:
    records, truth = population.records, population.truth
    assert len(truth) == PERSONS
    assert len({r.record.key for r in records}) == len(records)
    assert {r.person for r in records} == set(range(PERSONS))
    assert {r.record.source for r in records} == set(SOURCES)
    per_person = Counter(r.person for r in records)
    several = sum(1 for count in per_person.values() if count > 1) / PERSONS
    assert 0.45 < several < 0.55  # duplicate_rate 0.5
    assert max(per_person.values()) <= 6


def test_duplicate_rate_and_a_single_source() -> None:
    alone = generate_population(persons=500, sources=("CHU",), seed=1, duplicate_rate=0.0)
    assert len(alone) == 500
    one = generate_population(persons=300, sources=("CHU",), seed=1, duplicate_rate=1.0)
    by_person = Counter(r.person for r in one)
    assert all(count >= 2 for count in by_person.values())
    # Every record after a person's first in the only establishment is an internal duplicate.
    duplicates = sum(1 for r in one if "same_source_duplicate" in r.tags)
    assert duplicates == len(one) - 300


@pytest.mark.parametrize(
    "kwargs",
    [
        {"persons": -1, "sources": SOURCES},
        {"persons": 10, "sources": ()},
        {"persons": 10, "sources": ("A", "A")},
        {"persons": 10, "sources": SOURCES, "duplicate_rate": 1.5},
    ],
)
def test_bad_arguments_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - each case has its own message
        generate_population(**kwargs)  # type: ignore[arg-type]


def test_every_phenomenon_is_there(population: SyntheticPopulation) -> None:
    seen = Counter(tag for r in population.records for tag in r.tags)
    expected = RECORD_PHENOMENA | PERSON_PHENOMENA
    assert set(seen) >= expected, expected - set(seen)
    assert set(seen) <= RECORD_PHENOMENA | PERSON_PHENOMENA
    kinds = Counter(relation.kind for relation in population.relations)
    assert set(kinds) == {"twins", "parent_child", "siblings", "namesakes", "spouses"}


def test_the_truth_is_well_formed(population: SyntheticPopulation) -> None:
    valid_places = (
        {c.insee_code for c in COMMUNES}
        | {code for code, _ in fr.OTHER_BIRTH_PLACES}
        | set(fr.BIRTH_COUNTRIES)
    )
    nirs = [person.ins for person in population.truth]
    assert len(set(nirs)) == len(nirs)
    for person in population.truth:
        assert validate_ins(person.ins) == person.ins
        assert person.ins[0] == {"M": "1", "F": "2"}[person.sex]
        assert person.birth_date is not None
        assert person.ins[1:5] == person.birth_date.strftime("%y%m")
        assert person.ins[5:10] == person.birth_place_code
        assert person.birth_place_code in valid_places
        assert 1 <= len(person.given_names) <= 5  # a "Thi Lan" counts twice
        assert person.used_family_name != person.birth_family_name
        assert person.sex is not Sex.unknown


def test_qualified_records_carry_the_insi_traits_and_the_true_ins(
    population: SyntheticPopulation,
) -> None:
    checked = 0
    for item in population.records:
        record, truth = item.record, population.truth[item.person]
        if record.status not in (IdentityStatus.qualified, IdentityStatus.recovered):
            continue
        checked += 1
        traits = record.traits
        assert traits.ins == truth.ins
        assert traits.birth_family_name == fr.strip_accents(truth.birth_family_name)
        assert traits.given_names == tuple(fr.strip_accents(g).upper() for g in truth.given_names)
        assert (traits.birth_date, traits.sex) == (truth.birth_date, truth.sex)
        assert traits.birth_place_code == truth.birth_place_code
    assert checked > len(population.records) / 4


def test_every_ins_is_accounted_for(population: SyntheticPopulation) -> None:
    parents = defaultdict(set)
    for relation in population.relations:
        if relation.kind == "parent_child":
            parents[relation.second].add(population.truth[relation.first].ins)
    for item in population.records:
        ins, tags = item.record.traits.ins, item.tags
        if not ins:
            assert item.record.status is not IdentityStatus.qualified
        elif "wrong_ins" in tags:
            assert item.record.status is IdentityStatus.provisional
            with pytest.raises(InvalidIns, match="key"):
                validate_ins(ins)
        elif "ins_of_parent" in tags:
            assert item.record.status is IdentityStatus.provisional
            assert ins in parents[item.person] and is_valid_ins(ins)
        else:
            assert ins == population.truth[item.person].ins


def _pairs(population: SyntheticPopulation, kind: str) -> list[tuple[IdentityTraits, ...]]:
    truth = population.truth
    found = [(truth[r.first], truth[r.second]) for r in population.relations if r.kind == kind]
    assert found
    return found


def _first(traits: IdentityTraits) -> str:
    return fr.strip_accents(traits.first_given_name)


def test_twins_share_all_but_their_given_name(population: SyntheticPopulation) -> None:
    for a, b in _pairs(population, "twins"):
        assert (a.birth_family_name, a.birth_date, a.birth_place_code, a.address) == (
            b.birth_family_name,
            b.birth_date,
            b.birth_place_code,
            b.address,
        )
        assert _first(a) != _first(b) and a.ins != b.ins
    assert any(a.sex != b.sex for a, b in _pairs(population, "twins"))


def test_parent_and_child_homonyms(population: SyntheticPopulation) -> None:
    homonyms = [
        (parent, child)
        for parent, child in _pairs(population, "parent_child")
        if parent.given_names[0] == child.given_names[0]
    ]
    assert any(p.sex is Sex.male for p, _ in homonyms)
    assert any(p.sex is Sex.female for p, _ in homonyms)
    for parent, child in homonyms:
        assert parent.birth_date and child.birth_date and parent.sex == child.sex
        gap = (child.birth_date - parent.birth_date).days / 365.25
        assert 24.9 < gap < 35.1
        # A son has his father's name; a daughter has her mother's used (married) name.
        expected = parent.used_family_name if parent.sex is Sex.female else parent.birth_family_name
        assert child.birth_family_name == expected
    assert any(p.address == c.address for p, c in homonyms)


def test_namesakes_are_common_and_born_the_same_year(population: SyntheticPopulation) -> None:
    pairs = _pairs(population, "namesakes")
    for a, b in pairs:
        assert a.birth_family_name == b.birth_family_name and a.given_names[0] == b.given_names[0]
        assert a.birth_date and b.birth_date and a.birth_date.year == b.birth_date.year
        assert a.birth_place_code != b.birth_place_code
    assert any(a.birth_date == b.birth_date for a, b in pairs)


def test_siblings_and_spouses(population: SyntheticPopulation) -> None:
    for a, b in _pairs(population, "siblings"):
        assert a.birth_family_name == b.birth_family_name and _first(a) != _first(b)
    for wife, husband in _pairs(population, "spouses"):
        assert wife.used_family_name == husband.birth_family_name
        assert wife.address == husband.address


def test_name_frequencies_look_french(population: SyntheticPopulation) -> None:
    names = Counter(person.birth_family_name for person in population.truth)
    commonest = {name for name, _ in fr.FAMILY_NAMES[:25]}
    assert {name for name, _ in names.most_common(5)} <= commonest
    assert 0.004 < names["MARTIN"] / PERSONS < 0.015
    assert len(names) > 2000  # and a long tail
    given = Counter(g for person in population.truth for g in person.given_names)
    assert {"Jean-Pierre", "Marie", "Hélène", "Chloé"} <= set(given)
    married = [p for p in population.truth if p.used_family_name]
    assert all(p.sex is Sex.female for p in married)
    assert 0.15 < len(married) / PERSONS < 0.4


def _records(
    population: SyntheticPopulation, tag: str
) -> list[tuple[SyntheticRecord, IdentityTraits]]:
    found = [(r, population.truth[r.person]) for r in population.records if tag in r.tags]
    assert found, tag
    return found


def test_date_errors_are_what_their_tags_say(population: SyntheticPopulation) -> None:
    for item, truth in _records(population, "date_swap"):
        assert truth.birth_date is not None
        true = truth.birth_date
        assert item.record.traits.birth_date == date(true.year, true.day, true.month)
    for item, truth in _records(population, "date_placeholder"):
        found = item.record.traits.birth_date
        assert found == date(truth.birth_date.year, 1, 1) if truth.birth_date else False
    for item, truth in _records(population, "date_typo"):
        typed = item.record.traits.birth_date
        assert typed is not None and typed != truth.birth_date
        assert sum(x != y for x, y in zip(str(typed), str(truth.birth_date), strict=True)) == 1
    for item, _ in _records(population, "date_missing"):
        assert item.record.traits.birth_date is None


def test_name_errors_are_what_their_tags_say(population: SyntheticPopulation) -> None:
    for item, truth in _records(population, "used_as_birth"):
        if not {"typo", "phonetic", "name_form"} & set(item.tags):
            written = fr.strip_accents(item.record.traits.birth_family_name).upper()
            assert written == fr.strip_accents(truth.used_family_name)
    for _item, truth in _records(population, "compound_variant"):
        assert any("-" in g for g in truth.given_names)
    for item, _ in _records(population, "first_given_only"):
        assert len(item.record.traits.given_names) <= 2  # "Jean Pierre" splits in two
    accents = re.compile("[ÀÂÄÇÉÈÊËÎÏÔÖÙÛÜàâäçéèêëîïôöùûü]")
    for item, _ in _records(population, "accent_gain"):
        assert any(accents.search(g) for g in item.record.traits.given_names)
    for item, truth in _records(population, "place_postal"):
        postal = {c.insee_code: c.postal_code for c in COMMUNES}[truth.birth_place_code]
        assert item.record.traits.birth_place_code == postal


def test_phone_formats(population: SyntheticPopulation) -> None:
    forms = {
        "spaced": re.compile(r"^0\d( \d\d){4}$"),
        "compact": re.compile(r"^0\d{9}$"),
        "international": re.compile(r"^\+33\d{9}$"),
        "dotted": re.compile(r"^0\d(\.\d\d){4}$"),
    }
    seen = Counter()
    for item in population.records:
        phone = item.record.traits.phone
        if phone:
            matching = [name for name, form in forms.items() if form.match(phone)]
            assert len(matching) == 1, phone
            seen[matching[0]] += 1
    assert set(seen) == set(forms)


def test_hard_negatives_meet_in_the_same_establishment(population: SyntheticPopulation) -> None:
    """Twins born the same day in the same maternity end up in the same records system."""
    sources = defaultdict(set)
    for item in population.records:
        sources[item.person].add(item.record.source)
    twins = _pairs(population, "twins")
    numbers = {traits.ins: n for n, traits in enumerate(population.truth)}
    shared = sum(1 for a, b in twins if sources[numbers[a.ins]] & sources[numbers[b.ins]])
    assert shared / len(twins) > 0.4


def test_rates_can_switch_phenomena_off() -> None:
    quiet = Rates(typo=0, phonetic=0, twins=0, wrong_ins=0)
    records = generate_population(persons=800, sources=SOURCES, seed=2, rates=quiet)
    tags = {tag for r in records for tag in r.tags}
    assert not tags & {"typo", "phonetic", "twin", "wrong_ins"}


# --- the import format -----------------------------------------------------------------


def test_csv_round_trip(tmp_path: Path, population: SyntheticPopulation) -> None:
    paths = write_import_csvs(tmp_path / "out", population.records)
    assert set(paths) == set(SOURCES)
    by_key = {r.record.key: r.record for r in population.records}
    rows = 0
    for source, path in paths.items():
        assert path.name == f"{source}.csv"
        with path.open(encoding="utf-8", newline="") as stream:
            reader = csv.DictReader(stream)
            assert tuple(reader.fieldnames or ()) == CSV_HEADER
            for row in reader:
                rows += 1
                record = by_key[(source, row["local_id"])]
                traits = record.traits
                assert tuple(row["given_names"].split(" ")) == traits.given_names
                assert row["birth_family_name"] == traits.birth_family_name
                assert row["sex"] == traits.sex.value and row["sex"] in {"M", "F", "U"}
                expected = traits.birth_date.isoformat() if traits.birth_date else ""
                assert row["birth_date"] == expected
                assert [row[column] for column in CSV_HEADER] == csv_row(record)
    assert rows == len(population.records)


def test_csv_keeps_accents_apostrophes_and_commas(tmp_path: Path) -> None:
    records = generate_population(persons=2000, sources=("CHU",), seed=4)
    path = tmp_path / "chu.csv"
    write_import_csv(path, records)
    text = path.read_text(encoding="utf-8")
    assert text.startswith(",".join(CSV_HEADER))
    assert "é" in text or "É" in text
    with path.open(encoding="utf-8", newline="") as stream:
        read = list(csv.reader(stream))[1:]
    assert read == [csv_row(item.record) for item in records]


def test_csv_to_a_stream_and_one_source_per_file() -> None:
    records = generate_population(persons=50, sources=("CHU", "CHC"), seed=4)
    with pytest.raises(ValueError, match="several sources"):
        write_import_csv(io.StringIO(), records)
    stream = io.StringIO()
    write_import_csv(stream, [r for r in records if r.record.source == "CHU"])
    assert stream.getvalue().splitlines()[0] == ",".join(CSV_HEADER)
