"""From scores to decisions: the deterministic rules, and joining a person without chaining.

A pair's probabilistic score is overruled by what identity-vigilance knows for certain: two
identities with the same qualified INS are one person; two different INS from the national
teleservice are two persons; twins (same birth date, different given names), a parent and a
child of the same name (birth dates decades apart), a brother and a sister are never one.

A record joins a person only if it matches that person's records — its best pair free of any
cap is above the upper threshold, every pair with the person still favours the link
(PERSON_FLOOR), no rule excludes it and most of its pairs are free of contradictions (dates,
sex, birth places, twins' names) —, not because it resembles one record of a chain (A like
B, B like C, A unlike C).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Generic, NamedTuple, TypeVar

from partage.identity.features import (
    ADDRESS,
    BIRTH_DATE,
    GIVEN,
    GIVEN_FOUND_AMONG,
    GIVEN_IDENTICAL,
    GIVEN_OTHERS_DIFFER,
    INS,
    PHONE,
    PLACE,
    SEX,
    USED,
    Features,
    Levels,
)
from partage.identity.model import MIN_TF_POPULATION, MatchModel, PairScore, TermFrequencies

# Birth dates this many years apart are never a typo: a parent and a child.
GENERATION_YEARS = 12
# A family name carried by this share of identities or more is common (MARTIN: 0.35 %).
# (Calibrated on the synthetic population, whose common names are commoner than France's.)
COMMON_NAME_FREQUENCY = 0.004
# Every pair of a record with the records of the person it joins must still favour the link
# (log2 Bayes factor), its best pair being above the upper threshold: no chaining.
PERSON_FLOOR = 4.0
# At most this many review items for one incoming identity.
MAX_REVIEWS = 3

P = TypeVar("P", bound=Hashable)
R = TypeVar("R", bound=Hashable)


class Rule(StrEnum):
    same_qualified_ins = "same qualified INS"
    different_ins = "different INS from the national teleservice"
    twins = "same birth date, different given names (twins?)"
    siblings = "different given names, close birth dates (siblings?)"
    other_sex_sibling = "different sex and given names"
    generations = "birth dates a generation apart (parent and child?)"
    birth_dates_differ = "birth dates differ"
    birth_places_differ = "birth places in different departments"
    common_name_uncorroborated = "a common name and a birth date, nothing else agrees"
    sex_differs = "sex differs"
    not_duplicate = "marked as not a duplicate"


class PairJudgement(NamedTuple):
    """A pair's score and what the rules say of it (a tuple: one per candidate pair)."""

    score: PairScore
    rule: Rule | None = None
    certain: bool = False  # the rule links
    excluded: bool = False  # the rule forbids any link
    capped: bool = False  # at most a review

    @property
    def weight(self) -> float:
        return self.score.weight


def judge(
    a: Features, b: Features, model: MatchModel, frequencies: TermFrequencies | None
) -> PairJudgement:
    score = model.score(a, b, frequencies)
    levels = score.levels
    if a.ins and b.ins:
        if a.ins == b.ins and a.ins_qualified and b.ins_qualified:
            return PairJudgement(score, Rule.same_qualified_ins, certain=True)
        if a.ins != b.ins and a.ins_trusted and b.ins_trusted:
            return PairJudgement(score, Rule.different_ins, excluded=True)
    given, birth_date, sex = levels[GIVEN], levels[BIRTH_DATE], levels[SEX]
    # The same national id, consistent with both records (not a parent's number on a
    # child's record), outweighs differing given names or birth dates.
    same_id = (levels[INS] or 0) >= 1 and a.ins_consistent and b.ins_consistent
    same_day = birth_date is not None and birth_date >= 3
    if given is not None and given <= 1 and same_day and not same_id:
        return PairJudgement(score, Rule.twins, excluded=True)
    if given in (GIVEN_FOUND_AMONG, GIVEN_OTHERS_DIFFER) and same_day and not same_id:
        # "Jean André" and "Jean Claude" born the same day: twins called by their second name.
        return PairJudgement(score, Rule.twins, capped=True)
    if given is not None and given <= 1 and birth_date in (1, 2) and not same_id:
        # Another first name and a date one digit away: a sibling far more often than two
        # typing errors in one record.
        return PairJudgement(score, Rule.siblings, capped=True)
    if sex == 0 and (given is None or given < 4):
        return PairJudgement(score, Rule.other_sex_sibling, excluded=True)
    if birth_date == 0 and not same_id:
        assert a.dob is not None
        assert b.dob is not None
        if abs(a.dob.year - b.dob.year) >= GENERATION_YEARS:
            return PairJudgement(score, Rule.generations, excluded=True)
        return PairJudgement(score, Rule.birth_dates_differ, capped=True)
    if sex == 0:
        return PairJudgement(score, Rule.sex_differs, capped=True)
    if levels[PLACE] == 0:
        # A strict trait, read from an identity document: it does not change with a move.
        return PairJudgement(score, Rule.birth_places_differ, capped=True)
    if not _corroborated(a, b, levels) and _common_name(a, frequencies):
        # Namesakes born the same day: rare, but a common name makes them far less rare
        # than the model's independence of traits assumes.
        return PairJudgement(score, Rule.common_name_uncorroborated, capped=True)
    return PairJudgement(score)


def _corroborated(a: Features, b: Features, levels: Levels) -> bool:
    """Something besides the names and the birth date agrees (a used name only when it is
    the same: a married name close to another's is not a second trait)."""
    return (
        levels[PLACE] == 2
        or levels[ADDRESS] == 2
        or levels[PHONE] == 1
        or (levels[INS] or 0) >= 1
        or (levels[USED] == 1 and a.used == b.used)
        or levels[GIVEN] == GIVEN_IDENTICAL + 1
    )


def _common_name(a: Features, frequencies: TermFrequencies | None) -> bool:
    if frequencies is None or frequencies.total < MIN_TF_POPULATION:
        return False
    return frequencies.family_frequency(a.birth) >= COMMON_NAME_FREQUENCY


# A cap that says a pair's own evidence is too thin, not that its records contradict each
# other: the record may still join a person through another, corroborated pair.
THIN_EVIDENCE = frozenset({Rule.common_name_uncorroborated})


class Verdict(StrEnum):
    link = "link"
    review = "review"
    new = "new"


@dataclass(frozen=True)
class ReviewItem(Generic[P, R]):
    person: P
    record: R  # the person's record the incoming one resembles most
    judgement: PairJudgement


@dataclass(frozen=True)
class Outcome(Generic[P, R]):
    verdict: Verdict
    person: P | None = None
    record: R | None = None  # the best matching record of the person linked to
    judgement: PairJudgement | None = None
    reviews: list[ReviewItem[P, R]] = field(default_factory=list)


def person_standing(judgements: Sequence[PairJudgement], model: MatchModel) -> Verdict | None:
    """What one person is to an incoming identity, from its pairs with the person's records:
    link, review or new (too little resemblance); None when a rule excludes the person."""
    if not judgements or any(j.excluded for j in judgements):
        return None
    if any(j.certain for j in judgements):
        return Verdict.link
    best = max(j.weight for j in judgements)
    worst = min(j.weight for j in judgements)
    best_uncapped = max((j.weight for j in judgements if not j.capped), default=None)
    contradicted = sum(1 for j in judgements if j.capped and j.rule not in THIN_EVIDENCE)
    if (
        best_uncapped is not None
        and best_uncapped >= model.upper
        and worst >= PERSON_FLOOR
        and 2 * contradicted < len(judgements)
    ):
        return Verdict.link
    return Verdict.review if best >= model.lower else Verdict.new


class Candidate(NamedTuple, Generic[P, R]):
    """A person that may receive the incoming identity, with its best pair."""

    weight: float
    person: P
    record: R  # the person's record the incoming one resembles most
    judgement: PairJudgement
    standing: Verdict  # link or review
    certain: bool  # a rule links (same qualified INS)


def candidate(
    person: P, pairs: Sequence[tuple[R, PairJudgement]], model: MatchModel
) -> Candidate[P, R] | None:
    """What one person is to the incoming identity; None when it is not a candidate at all
    (a rule excludes it, or too little resemblance)."""
    standing = person_standing([j for _, j in pairs], model)
    if standing is None or standing is Verdict.new:
        return None
    record, best = max(pairs, key=lambda pair: pair[1].weight)
    certain = any(j.certain for _, j in pairs)
    return Candidate(best.weight, person, record, best, standing, certain)


def decide_person(
    pairs_by_person: Mapping[P, Sequence[tuple[R, PairJudgement]]], model: MatchModel
) -> Outcome[P, R]:
    """Link to one person, queue for review, or start a new person."""
    return choose(
        found
        for person, pairs in pairs_by_person.items()
        if (found := candidate(person, pairs, model)) is not None
    )


def choose(candidates: Iterable[Candidate[P, R]]) -> Outcome[P, R]:
    """The outcome from the candidate persons: a certain link first (a qualified INS), else
    the best linkable person; the others, best first, for review (at most MAX_REVIEWS)."""
    certain: list[Candidate[P, R]] = []
    linkable: list[Candidate[P, R]] = []
    reviewable: list[Candidate[P, R]] = []
    for found in candidates:
        if found.certain:
            certain.append(found)
        elif found.standing is Verdict.link:
            linkable.append(found)
        else:
            reviewable.append(found)
    chosen = max(certain, key=_by_weight, default=None) or max(
        linkable, key=_by_weight, default=None
    )
    others = sorted(
        (found for found in certain + linkable + reviewable if found is not chosen),
        key=_by_weight,
        reverse=True,
    )[:MAX_REVIEWS]
    reviews = [ReviewItem(found.person, found.record, found.judgement) for found in others]
    if chosen is not None:
        return Outcome(Verdict.link, chosen.person, chosen.record, chosen.judgement, reviews)
    if reviews:
        return Outcome(Verdict.review, reviews=reviews)
    return Outcome(Verdict.new)


def _by_weight(found: Candidate[Any, Any]) -> float:
    return found.weight
