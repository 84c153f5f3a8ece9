"""The Fellegi–Sunter model: how much each agreement level says about "same person".

Each comparison level carries m (its probability among pairs of records of one person) and
u (among pairs of different persons); its weight is log2(m/u). A pair's score is the sum of
its levels' weights. u is measured on random pairs (almost all of different persons), m is
estimated by expectation–maximisation on the candidate pairs blocking found. An identical
family or first given name weighs by how common that name is (term frequency): two records
agreeing on "MARTIN" say less than two agreeing on "QUINTARD".
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from partage.identity.features import (
    COMPARISONS,
    FAMILY,
    FAMILY_IDENTICAL,
    GIVEN,
    GIVEN_IDENTICAL,
    Features,
    Levels,
    compare,
)

_FLOOR = 1e-6
# Term-frequency weights may not exceed the weight of the rarest value seen by this much.
_TF_MIN_FREQUENCY = 1e-6
# Name frequencies measured on fewer identities than this say nothing: no adjustment.
MIN_TF_POPULATION = 1_000

# The thresholds are posterior log2 odds of "same person": a pair's weight plus the prior log2
# odds that two records of the territory, drawn at random, are one person. That prior falls
# as the territory grows (one more person is one more namesake to tell apart), so the weight
# a link needs rises with it: calibrated on the synthetic French population at 40,000
# records (prior -14.7 bits; weights 26 and 21 bits): no false automatic merge, a review
# queue under 2 % of records.
LINK_POSTERIOR = 11.3
REVIEW_POSTERIOR = 6.3
# The prior an unestimated model assumes (the calibration's), and the bounds of the weight
# a link needs whatever the estimate: small or very duplicated files never link on less.
DEFAULT_PRIOR_LOG2 = -14.7
CALIBRATION_RECORDS = 41_608
MIN_UPPER = 22.0
MAX_UPPER = 40.0


def _default_parameters() -> tuple[list[list[float]], list[list[float]]]:
    """Starting values (and the model of an empty territory): deliberately conservative."""
    m = [
        [0.02, 0.02, 0.03, 0.04, 0.06, 0.03, 0.80],
        [0.03, 0.02, 0.04, 0.06, 0.01, 0.05, 0.02, 0.47, 0.30],
        [0.02, 0.03, 0.02, 0.02, 0.01, 0.90],
        [0.02, 0.98],
        [0.05, 0.05, 0.90],
        [0.30, 0.25, 0.45],
        [0.40, 0.60],
        [0.01, 0.01, 0.98],
        [0.1, 0.9],
    ]
    u = [
        [0.97, 0.02, 0.001, 0.001, 0.003, 0.001, 0.004],
        [0.94, 0.03, 0.005, 0.005, 0.001, 0.001, 0.003, 0.0149, 0.0001],
        [0.997, 0.0015, 0.0004, 0.00005, 0.00005, 0.0001],
        [0.5, 0.5],
        [0.7, 0.25, 0.05],
        [0.95, 0.04, 0.01],
        [0.9999, 0.0001],
        [0.99998, 0.00001, 0.00001],
        [0.95, 0.05],
    ]
    return m, u


@dataclass
class TermFrequencies:
    """How often each normalised family name and first given name occurs."""

    family: Counter[str] = field(default_factory=Counter)
    given: Counter[str] = field(default_factory=Counter)
    total: int = 0

    def add(self, features: Features) -> None:
        self.total += 1
        if features.birth:
            self.family[features.birth] += 1
        if features.first:
            self.given[features.first] += 1

    def family_frequency(self, name: str) -> float:
        return self.family.get(name, 1) / self.total if self.total else 0.0

    def given_frequency(self, name: str) -> float:
        return self.given.get(name, 1) / self.total if self.total else 0.0


@dataclass(frozen=True)
class Contribution:
    comparison: str
    level: str
    weight: float


class PairScore(NamedTuple):
    """A pair's levels and weights (a tuple: one is made for every candidate pair)."""

    levels: Levels
    weight: float
    weights: tuple[float, ...]

    def explain(self) -> list[Contribution]:
        """Which traits agreed, at which level, with what weight (for the console)."""
        return [
            Contribution(COMPARISONS[i][0], COMPARISONS[i][1][level], round(self.weights[i], 2))
            for i, level in enumerate(self.levels)
            if level is not None
        ]


class MatchModel:
    """m and u per comparison level, the weights they give, and the prior of a random pair
    (hence the thresholds)."""

    def __init__(
        self,
        m: Sequence[Sequence[float]] | None = None,
        u: Sequence[Sequence[float]] | None = None,
        *,
        prior_log2: float = DEFAULT_PRIOR_LOG2,
    ) -> None:
        default_m, default_u = _default_parameters()
        self.m = [list(row) for row in (m or default_m)]
        self.u = [list(row) for row in (u or default_u)]
        self.set_prior(prior_log2)
        self._refresh()

    def set_prior(self, prior_log2: float) -> None:
        """The prior log2 odds of a random pair, and the thresholds (weights) it gives."""
        self.prior_log2 = prior_log2
        self.upper = min(max(LINK_POSTERIOR - prior_log2, MIN_UPPER), MAX_UPPER)
        self.lower = self.upper - (LINK_POSTERIOR - REVIEW_POSTERIOR)

    def _refresh(self) -> None:
        self.weights = [
            [
                math.log2(max(mi, _FLOOR) / max(ui, _FLOOR))
                for mi, ui in zip(m_row, u_row, strict=True)
            ]
            for m_row, u_row in zip(self.m, self.u, strict=True)
        ]

    def score(
        self, a: Features, b: Features, frequencies: TermFrequencies | None = None
    ) -> PairScore:
        levels = compare(a, b)
        weights = [
            0.0 if level is None else row[level]
            for row, level in zip(self.weights, levels, strict=True)
        ]
        if frequencies is not None and frequencies.total >= MIN_TF_POPULATION:
            if levels[FAMILY] == FAMILY_IDENTICAL:
                weights[FAMILY] = self._tf_weight(
                    FAMILY, FAMILY_IDENTICAL, frequencies.family_frequency(a.birth)
                )
            if levels[GIVEN] in (GIVEN_IDENTICAL, GIVEN_IDENTICAL + 1):
                given = levels[GIVEN]
                assert given is not None
                weights[GIVEN] = self._tf_weight(GIVEN, given, frequencies.given_frequency(a.first))
        return PairScore(levels, sum(weights), tuple(weights))

    def _tf_weight(self, comparison: int, level: int, frequency: float) -> float:
        generic = self.weights[comparison][level]
        tf = math.log2(max(self.m[comparison][level], _FLOOR) / max(frequency, _TF_MIN_FREQUENCY))
        # A common name weighs less than the average agreement; a rare one more, within reason.
        return max(min(tf, generic + 6.0), 0.0)

    def grow_to(self, population: int, estimated_on: int) -> None:
        """The prior of a territory grown from `estimated_on` identities (when the model was
        estimated) to `population` (the ADT feed adds identities between bulk imports): a
        random pair is that much less likely to be one person."""
        if estimated_on > 0 and population > estimated_on:
            self.set_prior(self.prior_log2 - math.log2(population / estimated_on))

    def probability(self, weight: float) -> float:
        """The probability of "same person" for a pair of this weight, for display: the
        posterior odds at the thresholds' prior (a link needs about 99.96 %)."""
        odds = weight - self.upper + LINK_POSTERIOR
        if odds > 60:
            return 1.0
        if odds < -60:
            return 0.0
        return 2**odds / (1 + 2**odds)

    # Estimation

    def estimate_u(
        self, sample: Sequence[Features], *, pairs: int = 100_000, seed: int = 0
    ) -> None:
        """u from random pairs: almost all are pairs of different persons."""
        if len(sample) < 2:
            return
        rng = random.Random(seed)  # noqa: S311 - sampling, not secrecy
        counts = [[1.0] * len(row) for row in self.u]  # Laplace smoothing
        n = len(sample)
        for _ in range(pairs):
            i, j = rng.randrange(n), rng.randrange(n)
            if i == j:
                continue
            for c, level in enumerate(compare(sample[i], sample[j])):
                if level is not None:
                    counts[c][level] += 1
        self.u = [_normalised(row) for row in counts]
        # A level never met among random pairs keeps a small floor rather than a zero.
        self._refresh()

    def estimate_m(
        self, rounds: Sequence[tuple[frozenset[int], Iterable[Levels]]], *, iterations: int = 40
    ) -> list[tuple[float, int]]:
        """m by EM, one round per blocking key, as Splink does; returns each round's match
        rate and pair count (for `estimate_prior`).

        The pairs one key finds agree on that key's traits by construction: those traits say
        nothing there, and counting them would make every such pair look like a match (the
        namesakes a name-and-birth-date key finds included). Each round leaves its key's
        comparisons out and estimates the others; a comparison's m is the mean of its rounds.
        """
        sums = [[0.0] * len(row) for row in self.m]
        counts = [0] * len(self.m)
        found: list[tuple[float, int]] = []
        for ignored, levels in rounds:
            patterns = Counter(levels)
            estimated = self._em(patterns, ignored, iterations)
            if estimated is None:
                continue
            m, rate = estimated
            found.append((rate, patterns.total()))
            for c, row in enumerate(m):
                if c in ignored:
                    continue
                counts[c] += 1
                sums[c] = [s + v for s, v in zip(sums[c], row, strict=True)]
        for c, total in enumerate(counts):
            if total:
                self.m[c] = _normalised([s / total for s in sums[c]])
        self._refresh()
        return found

    def estimate_prior(self, rounds: Sequence[tuple[float, int]], records: int) -> None:
        """The prior from each EM round's match rate and pair count, over all pairs of the
        `records` the rounds were drawn from. Each key finds only some of the true pairs: the
        largest count is a lower bound, the cautious side (higher thresholds)."""
        total = records * (records - 1) / 2
        matches = max((rate * pairs for rate, pairs in rounds), default=0.0)
        if total <= 0 or matches < 1:
            return
        probability = min(matches / total, 0.5)
        self.set_prior(math.log2(probability / (1 - probability)))

    def _em(
        self, patterns: Counter[Levels], ignored: frozenset[int], iterations: int
    ) -> tuple[list[list[float]], float] | None:
        if not patterns:
            return None
        patterns = Counter(
            {
                tuple(None if c in ignored else level for c, level in enumerate(levels)): 0
                for levels in patterns
            }
        ) + _masked(patterns, ignored)
        m = [list(row) for row in self.m]
        rate = 0.5
        for _ in range(iterations):
            m_counts = [[0.01] * len(row) for row in m]
            matched = 0.0
            total = 0.0
            for levels, count in patterns.items():
                p_match = rate
                p_non = 1 - rate
                for c, level in enumerate(levels):
                    if level is not None:
                        p_match *= m[c][level]
                        p_non *= self.u[c][level]
                posterior = p_match / (p_match + p_non) if p_match + p_non > 0 else 0.0
                matched += posterior * count
                total += count
                for c, level in enumerate(levels):
                    if level is not None:
                        m_counts[c][level] += posterior * count
            m = [_normalised(row) for row in m_counts]
            rate = min(max(matched / total, 1e-4), 0.9999)
        return m, rate

    # Storage

    def to_json(self) -> dict[str, Any]:
        return {
            "m": self.m,
            "u": self.u,
            "prior_log2": self.prior_log2,  # the thresholds follow from it
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> MatchModel:
        return cls(
            data["m"],
            data["u"],
            # Models saved before the prior was estimated: the calibration's. (Their
            # candidate_match_rate, upper and lower are derived or unused: not read.)
            prior_log2=data.get("prior_log2", DEFAULT_PRIOR_LOG2),
        )


def _masked(patterns: Counter[Levels], ignored: frozenset[int]) -> Counter[Levels]:
    masked: Counter[Levels] = Counter()
    for levels, count in patterns.items():
        masked[tuple(None if c in ignored else level for c, level in enumerate(levels))] += count
    return masked


def _normalised(row: Sequence[float]) -> list[float]:
    total = sum(row)
    return [max(value / total, _FLOOR) for value in row]
