"""Federating a batch of identities in memory: the bulk path and the benchmarks' matcher.

The batch is matched the way the territory receives identities one by one — each record is
decided against the persons already formed, with the same rules (`decide`) as the
incremental path — but candidates come from in-memory key indexes rather than the database,
and the model is first estimated on the batch itself (u on random pairs, m by EM on the
candidate pairs).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field

from partage.identity.blocking import KEY_COLUMNS, QUERY_COLUMNS, query_keys, stored_keys
from partage.identity.decide import (
    Candidate,
    Outcome,
    ReviewItem,
    Verdict,
    candidate,
    choose,
    judge,
)
from partage.identity.features import BIRTH_DATE, FAMILY, GIVEN, Features, Levels, compare
from partage.identity.model import MatchModel, TermFrequencies
from partage.identity.traits import SourceRecord

# A key value shared by more identities than this finds too many to compare: it is skipped
# (the other keys still find the duplicates). Bulk only; a country needs finer keys.
MAX_BLOCK = 400
ESTIMATION_RECORDS = 40_000
RANDOM_PAIRS = 200_000
# Below these, the data say too little: the current (or default) parameters are kept.
MIN_RECORDS_FOR_U = 500
MIN_PAIRS_FOR_M = 200

# EM rounds: a blocking key, and the comparisons its pairs agree on by construction.
TRAINING_KEYS = (
    ("k_name_dob", frozenset({FAMILY, BIRTH_DATE})),
    ("k_given_dob", frozenset({GIVEN, BIRTH_DATE})),
    ("k_name_given", frozenset({FAMILY, GIVEN})),
)

RecordKey = tuple[str, str]
Progress = Callable[[int, int], None]


class MemoryIndex:
    """Key indexes over identities already placed, and the persons they form."""

    def __init__(self) -> None:
        self.columns: dict[str, dict[str, list[int]]] = {name: {} for name in KEY_COLUMNS}
        self.person_of: list[int] = []
        self.members: dict[int, list[int]] = {}

    def add(self, index: int, features: Features, person: int) -> None:
        self.add_keys(index, features)
        while len(self.person_of) <= index:
            self.person_of.append(-1)
        self.person_of[index] = person
        self.members.setdefault(person, []).append(index)

    def add_keys(self, index: int, features: Features) -> None:
        """Make an identity findable by its keys (its person is recorded elsewhere)."""
        for name, value in zip(KEY_COLUMNS, stored_keys(features), strict=True):
            if value is not None:
                self.columns[name].setdefault(value, []).append(index)

    def candidates(self, features: Features, keys: Collection[str] | None = None) -> set[int]:
        queries = query_keys(features)
        if keys is not None:
            queries = {key: values for key, values in queries.items() if key in keys}
        return self.found(queries)

    def found(
        self, queries: dict[str, set[str]], *, sized_by: MemoryIndex | None = None
    ) -> set[int]:
        """The identities under these key values (`query_keys`). A value shared by more than
        MAX_BLOCK identities is skipped — counted in `sized_by` when given (an index holding
        these identities among others), in this index otherwise."""
        found: set[int] = set()
        for key, values in queries.items():
            for column in QUERY_COLUMNS[key]:
                index = self.columns[column]
                if sized_by is None:
                    for value in values:
                        block = index.get(value)
                        if block and len(block) <= MAX_BLOCK:
                            found.update(block)
                    continue
                sizes = sized_by.columns[column]
                for value in values:
                    block = index.get(value)
                    if block and len(sizes.get(value, ())) <= MAX_BLOCK:
                        found.update(block)
        return found

    def person_candidates(
        self,
        f: Features,
        persons: Iterable[int],
        features: Sequence[Features],
        model: MatchModel,
        frequencies: TermFrequencies,
    ) -> list[Candidate[int, int]]:
        """Those of `persons` that may receive `f`, each scored on all its members."""
        found: list[Candidate[int, int]] = []
        members = self.members
        for person in persons:
            pairs = [(j, judge(f, features[j], model, frequencies)) for j in members[person]]
            if (entry := candidate(person, pairs, model)) is not None:
                found.append(entry)
        return found


@dataclass
class Federation:
    person_of: dict[RecordKey, int]
    review: list[tuple[RecordKey, RecordKey]]
    model: MatchModel
    outcomes: list[Outcome[int, int]] = field(default_factory=list)


def estimate_model(
    features: Sequence[Features], model: MatchModel | None = None, *, seed: int = 0
) -> MatchModel:
    """u on random pairs, m by EM over the candidate pairs of (a sample of) the batch."""
    model = model or MatchModel()
    rng = random.Random(seed)  # noqa: S311 - sampling, not secrecy
    sample = list(features)
    if len(sample) > ESTIMATION_RECORDS:
        sample = rng.sample(sample, ESTIMATION_RECORDS)
    if len(sample) < MIN_RECORDS_FOR_U:
        return model
    model.estimate_u(sample, pairs=RANDOM_PAIRS, seed=seed)
    index = MemoryIndex()
    for i, f in enumerate(sample):
        index.add(i, f, i)
    rounds: list[tuple[frozenset[int], list[Levels]]] = []
    for key, ignored in TRAINING_KEYS:
        patterns = [
            compare(f, sample[j])
            for i, f in enumerate(sample)
            for j in index.candidates(f, (key,))
            if j > i
        ]
        if len(patterns) >= MIN_PAIRS_FOR_M:
            rounds.append((ignored, patterns))
    model.estimate_prior(model.estimate_m(rounds), len(sample))
    return model


def federate(
    records: Sequence[SourceRecord],
    *,
    model: MatchModel | None = None,
    estimate: bool = True,
    progress: Progress | None = None,
) -> Federation:
    features = [Features(r.traits, r.status) for r in records]
    frequencies = TermFrequencies()
    for f in features:
        frequencies.add(f)
    if estimate:
        model = estimate_model(features, model)
    model = model or MatchModel()
    persons, outcomes = assign(features, model, frequencies, progress=progress)
    keys = [r.key for r in records]
    review = [
        (keys[i], keys[item.record])
        for i, outcome in enumerate(outcomes)
        for item in outcome.reviews
    ]
    return Federation(dict(zip(keys, persons, strict=True)), review, model, outcomes)


def assign(
    features: Sequence[Features],
    model: MatchModel,
    frequencies: TermFrequencies,
    *,
    progress: Progress | None = None,
) -> tuple[list[int], list[Outcome[int, int]]]:
    """Place each identity in turn: join a person, or start one (and maybe queue a review)."""
    index = MemoryIndex()
    outcomes: list[Outcome[int, int]] = []
    persons: list[int] = []
    total = len(features)
    for i, f in enumerate(features):
        outcome = place(f, index, features, model, frequencies)
        person = (
            outcome.person if outcome.verdict is Verdict.link and outcome.person is not None else i
        )
        index.add(i, f, person)
        persons.append(person)
        outcomes.append(outcome)
        if progress is not None and (i + 1) % 1000 == 0:
            progress(i + 1, total)
    if progress is not None:
        progress(total, total)
    return persons, outcomes


def place(
    f: Features,
    index: MemoryIndex,
    features: Sequence[Features],
    model: MatchModel,
    frequencies: TermFrequencies,
) -> Outcome[int, int]:
    persons = {index.person_of[j] for j in index.candidates(f)}
    return choose(index.person_candidates(f, persons, features, model, frequencies))


def review_items(outcomes: Iterable[Outcome[int, int]]) -> list[ReviewItem[int, int]]:
    return [item for outcome in outcomes for item in outcome.reviews]
