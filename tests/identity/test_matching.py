"""The matcher itself: comparison levels, rules, person decisions, blocking and the prior."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import replace
from datetime import date

import pytest

from partage.identity.blocking import KEY_COLUMNS, query_keys, stored_keys
from partage.identity.decide import PairJudgement, Rule, Verdict, judge, person_standing
from partage.identity.engine import Federation, MemoryIndex, federate
from partage.identity.features import GIVEN, GIVEN_OTHERS_DIFFER, Features, compare
from partage.identity.model import (
    DEFAULT_PRIOR_LOG2,
    LINK_POSTERIOR,
    MAX_UPPER,
    MIN_UPPER,
    REVIEW_POSTERIOR,
    MatchModel,
    PairScore,
    TermFrequencies,
)
from partage.identity.synthetic import SyntheticRecord, generate_population
from partage.identity.traits import IdentityStatus, IdentityTraits, Sex

BASE = IdentityTraits(
    birth_family_name="QUINTARD",
    given_names=("Zoé", "Madeleine"),
    sex=Sex.female,
    birth_date=date(2006, 8, 2),
    birth_place_code="86194",
    address="12 rue des Carmes",
    postal_code="86000",
    city="Poitiers",
    phone="0549102928",
)


def features(
    traits: IdentityTraits, status: IdentityStatus = IdentityStatus.provisional
) -> Features:
    return Features(traits, status)


def test_an_initial_is_the_same_second_given_name() -> None:
    a = features(BASE)
    initial = features(replace(BASE, given_names=("ZOÉ", "M.")))
    other = features(replace(BASE, given_names=("Zoé", "Colette")))
    assert compare(a, initial)[GIVEN] == GIVEN_OTHERS_DIFFER + 1
    assert compare(a, other)[GIVEN] == GIVEN_OTHERS_DIFFER


def test_two_compound_names_sharing_their_first_part_are_two_names() -> None:
    jean_michel = features(replace(BASE, given_names=("JEAN", "MICHEL", "LOUIS")))
    jean_marie = features(replace(BASE, given_names=("Jean-Marie", "Joseph")))
    split = features(replace(BASE, given_names=("JEAN", "MARIE")))
    assert compare(jean_michel, jean_marie)[GIVEN] == GIVEN_OTHERS_DIFFER
    assert compare(split, jean_marie)[GIVEN] == 3  # one name, split by another desk
    usual = features(replace(BASE, given_names=("Marie", "Anne")))
    full = features(replace(BASE, given_names=("Marie-Thérèse", "Anne")))
    assert compare(usual, full)[GIVEN] == 3


def test_twins_called_by_their_second_given_name_are_at_most_a_review() -> None:
    jean_andre = replace(BASE, given_names=("Jean", "André", "Robert"), sex=Sex.male)
    jean_claude = replace(jean_andre, given_names=("Jean", "Claude", "Louis"))
    judgement = judge(features(jean_andre), features(jean_claude), MatchModel(), None)
    assert judgement.rule is Rule.twins
    assert judgement.capped and not judgement.excluded


def test_another_first_name_and_a_date_one_digit_away_is_a_sibling() -> None:
    julia = replace(BASE, given_names=("Julia",), birth_date=date(2021, 11, 21))
    louise = replace(BASE, given_names=("Louise",), birth_date=date(2021, 11, 24))
    judgement = judge(features(julia), features(louise), MatchModel(), None)
    assert judgement.rule is Rule.siblings
    assert judgement.capped


def test_a_similar_married_name_does_not_corroborate_a_common_name() -> None:
    frequencies = TermFrequencies()
    for n in range(2_000):  # THOMAS: 5 % of the territory
        name = "THOMAS" if n % 20 == 0 else f"NAME{n}"
        frequencies.add(features(replace(BASE, birth_family_name=name)))
    first = replace(
        BASE,
        birth_family_name="Thomas",
        used_family_name="Gabard",
        given_names=("Nathalie",),
        birth_place_code="",
        address="95 avenue du Clain",
        phone="0708433047",
    )
    second = replace(
        first, used_family_name="Gabaud", address="137 rue des Carmes", phone="0549000000"
    )
    judgement = judge(features(first), features(second), MatchModel(), frequencies)
    assert judgement.rule is Rule.common_name_uncorroborated
    same_married_name = judge(
        features(first),
        features(replace(second, used_family_name="Gabard")),
        MatchModel(),
        frequencies,
    )
    assert same_married_name.rule is None


def _judgement(weight: float, **flags: bool) -> PairJudgement:
    return PairJudgement(PairScore((), weight, ()), **flags)  # type: ignore[arg-type]


def test_a_person_is_joined_only_if_every_pair_favours_it() -> None:
    model = MatchModel()
    assert person_standing([_judgement(model.upper + 1)], model) is Verdict.link
    # A like B, B unlike C: no chaining.
    assert person_standing([_judgement(model.upper + 10), _judgement(1.0)], model) is Verdict.review
    assert (
        person_standing([_judgement(40.0), _judgement(30.0, capped=True)], model) is Verdict.review
    )
    assert person_standing([_judgement(40.0), _judgement(30.0, excluded=True)], model) is None
    assert person_standing([_judgement(model.lower - 1)], model) is Verdict.new
    # One contradiction among three records is outvoted; thin evidence is no contradiction.
    strong = _judgement(40.0)
    contradiction = PairJudgement(PairScore((), 30.0, ()), Rule.birth_dates_differ, capped=True)
    thin = PairJudgement(PairScore((), 30.0, ()), Rule.common_name_uncorroborated, capped=True)
    assert person_standing([strong, strong, contradiction], model) is Verdict.link
    assert person_standing([strong, contradiction], model) is Verdict.review
    assert person_standing([strong, thin], model) is Verdict.link
    assert person_standing([thin], model) is Verdict.review


def test_the_birth_date_and_postal_code_find_a_record_whose_names_are_both_wrong() -> None:
    index = MemoryIndex()
    known = features(replace(BASE, phone="", ins=""))
    index.add(0, known, 0)
    garbled = features(
        replace(BASE, birth_family_name="Kintar", given_names=("Sophie",), phone="", ins="")
    )
    assert index.candidates(garbled) == {0}
    assert "k_dob_postal" in KEY_COLUMNS
    swapped_date = features(replace(BASE, birth_date=date(2006, 2, 8), phone="", ins=""))
    assert (
        stored_keys(known)[KEY_COLUMNS.index("k_dob_postal")]
        in query_keys(swapped_date)["k_dob_postal"]
    )


def test_thresholds_follow_the_prior_within_bounds() -> None:
    model = MatchModel()
    assert model.prior_log2 == DEFAULT_PRIOR_LOG2
    assert model.upper == pytest.approx(LINK_POSTERIOR - DEFAULT_PRIOR_LOG2)
    assert model.upper - model.lower == pytest.approx(LINK_POSTERIOR - REVIEW_POSTERIOR)
    bigger = MatchModel(prior_log2=DEFAULT_PRIOR_LOG2 - 4)  # sixteen times the records
    assert bigger.upper == pytest.approx(model.upper + 4)
    assert MatchModel(prior_log2=-1.0).upper == MIN_UPPER
    assert MatchModel(prior_log2=-60.0).upper == MAX_UPPER
    # A link needs about 99.96 %; the display says so whatever the territory's size.
    assert model.probability(model.upper) == pytest.approx(
        2**LINK_POSTERIOR / (1 + 2**LINK_POSTERIOR)
    )
    assert bigger.probability(bigger.upper) == pytest.approx(model.probability(model.upper))


def test_the_thresholds_rise_as_the_territory_grows_after_estimation() -> None:
    model = MatchModel(prior_log2=-15.0)
    upper = model.upper
    model.grow_to(4_000, estimated_on=1_000)  # four times the identities: two bits more
    assert model.upper == pytest.approx(upper + 2)
    model.grow_to(1_000, estimated_on=4_000)  # identities are never removed: no fall
    assert model.upper == pytest.approx(upper + 2)


def test_the_prior_is_a_lower_bound_from_the_best_round() -> None:
    model = MatchModel()
    model.estimate_prior([(0.5, 100), (0.9, 1_000)], records=10_000)
    expected = 900 / (10_000 * 9_999 / 2)
    assert model.prior_log2 == pytest.approx(math.log2(expected / (1 - expected)))
    unchanged = MatchModel()
    unchanged.estimate_prior([], records=10_000)
    assert unchanged.prior_log2 == DEFAULT_PRIOR_LOG2


def test_saved_models_without_a_prior_keep_the_calibration() -> None:
    saved = MatchModel(prior_log2=-18.0).to_json()
    assert MatchModel.from_json(saved).upper == pytest.approx(LINK_POSTERIOR + 18.0)
    del saved["prior_log2"]
    assert MatchModel.from_json(saved).prior_log2 == DEFAULT_PRIOR_LOG2


@pytest.fixture(scope="module")
def population() -> list[SyntheticRecord]:
    return generate_population(persons=1_000, sources=("A", "B", "C"), seed=7)


@pytest.fixture(scope="module")
def federation(population: list[SyntheticRecord]) -> Federation:
    return federate([r.record for r in population])


def test_estimated_prior_is_close_to_the_truth_and_never_above_it(
    population: list[SyntheticRecord], federation: Federation
) -> None:
    model = federation.model
    sizes = Counter(r.person for r in population)
    true_pairs = sum(n * (n - 1) // 2 for n in sizes.values())
    total = len(population) * (len(population) - 1) / 2
    truth = math.log2(true_pairs / (total - true_pairs))
    assert truth - 2.0 < model.prior_log2 <= truth + 0.2


def test_federation_links_duplicates_and_keeps_relatives_apart(
    population: list[SyntheticRecord], federation: Federation
) -> None:
    truths: dict[int, set[int]] = {}
    for r in population:
        truths.setdefault(federation.person_of[r.record.key], set()).add(r.person)
    assert all(len(persons) == 1 for persons in truths.values())  # no false merge
    true_persons = len({r.person for r in population})
    # Most duplicates are found: not far more persons than the truth holds.
    assert len(truths) < true_persons + (len(population) - true_persons) * 0.15
