"""Accuracy of the master patient index against ground truth, side by side with Splink.

    .venv/bin/python bench/identity_accuracy.py [--persons 20000] [--seed 0] [--duplicate-rate 0.65]
                                                [--only french|febrl1|febrl2|febrl3]
                                                [--no-splink]

Data sets (`identity_datasets.py`): the synthetic French population (several establishments,
at least 20,000 persons and 40,000 records for its target) and FEBRL 1, 2 and 3.

Measures, for Partage (`partage.identity.engine.federate`) and for a tuned Splink 5 model
(DuckDB): pairwise precision, recall and F1 over the *automatic* links (every pair of records
put in the same person; pairs queued for review are not links), false merges (predicted
same-person pairs that are two true persons, and the predicted persons that hold two or more
true persons), the review queue (pairs, and as a share of records), the F1 had the queue been
resolved perfectly (true review pairs merged), and wall time.

Splink, tuned and fair: it gets the same fields, normalised as one would in practice
(upper-case ASCII, separators removed from names, digits only in phone numbers; the INS only
where the INSi teleservice returned it, qualified or recovered, as identity-vigilance rules
say). Comparisons: family name and first given name by exact match with term-frequency
adjustments, then Jaro-Winkler 0.92/0.88/0.7 (plus birth-/used-name crossings, a shared given
name, and forename/surname swapped, when the data has them); birth date by exact, day-month
swap, one edit, and same year with a 1 January placeholder (no "within a year" levels: they
merged namesakes and cost F1); phone exact (TF: a household's number counts for less) then
1-2 edits; INS exact then 1 edit; postcode exact (TF) then 1 edit; city exact (TF) then
Jaro-Winkler 0.9; address exact (TF) then Jaro-Winkler 0.95/0.85; sex, birth place (TF) and
establishment (same establishment: rarely one person) exact. Candidate pairs: the union of 11
blocking rules (names, birth date, name + birth year, swapped names, phone, INS, used name,
postcode + forename start, address). λ from deterministic rules (recall 0.7), u by random
sampling (1e7 pairs, seed 1), m by EM over two blocking rules (birth date; surname +
forename). Persons: Splink's connected components at a match-probability threshold, which
chains (A-B and B-C put A and C together). Two Splink columns are printed: the conventional
threshold 0.9 (review band 0.5 ≤ p < 0.9), and the best F1 over a sweep of thresholds chosen
*with the truth* (an oracle, in Splink's favour; ties go to the higher threshold); the
Partage-vs-Splink verdicts are against that best one.

On the French data, false merges are broken down by the relation of the persons merged
(twins, namesakes…) and missed pairs by the phenomena their records carry.

Exit code 0 always: the benchmark reports, PASS or FAIL per target.
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
import time
import traceback
import unicodedata
from collections import Counter
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Any, Literal

sys.path.insert(0, str(Path(__file__).resolve().parent))

from identity_datasets import DATASETS, FEBRL_SOURCE, FRENCH_DUPLICATE_RATE, Dataset, load

from partage.identity.traits import IdentityStatus, Sex, SourceRecord

Key = tuple[str, str]
Pair = tuple[Key, Key]

FRENCH_MIN_PERSONS = 20_000
FRENCH_MIN_RECORDS = 40_000
FRENCH_F1_TARGET = 0.98
FRENCH_QUEUE_TARGET = 0.02  # of records
FEBRL_F1_TARGET = 0.99

SPLINK_THRESHOLD = 0.9
SPLINK_REVIEW_FLOOR = 0.5
SPLINK_SWEEP = (0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999)
SPLINK_DETERMINISTIC_RECALL = 0.7
SPLINK_DATE_DIFFERENCE_LEVELS: tuple[tuple[int, Literal["month", "year"]], ...] = ()
SPLINK_U_PAIRS = 1e7  # Splink's docs: 1e7 "often adequate"; 5e7 changed F1 by < 0.001 here


# ---------------------------------------------------------------------------------------------
# Metrics


@dataclass
class Outcome:
    """What a linker decided: a person (cluster) per record, and the pairs it queued."""

    label: str
    cluster_of: dict[Key, Hashable]
    review: list[Pair]
    seconds: float
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Pairwise:
    true_pairs: int
    predicted_pairs: int
    true_positives: int
    impure_clusters: int  # predicted persons holding two or more true persons

    @property
    def false_merges(self) -> int:
        return self.predicted_pairs - self.true_positives

    @property
    def precision(self) -> float:
        return self.true_positives / self.predicted_pairs if self.predicted_pairs else 1.0

    @property
    def recall(self) -> float:
        return self.true_positives / self.true_pairs if self.true_pairs else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


def _pairs(n: int) -> int:
    return n * (n - 1) // 2


def pairwise(truth: Mapping[Key, str], cluster_of: Mapping[Key, Hashable]) -> Pairwise:
    """Pair counts from the contingency of predicted persons against true persons."""
    cells = Counter((cluster_of[key], entity) for key, entity in truth.items())
    predicted = Counter(cluster_of[key] for key in truth)
    true = Counter(truth.values())
    persons_per_cluster = Counter(cluster for cluster, _ in cells)
    return Pairwise(
        true_pairs=sum(_pairs(n) for n in true.values()),
        predicted_pairs=sum(_pairs(n) for n in predicted.values()),
        true_positives=sum(_pairs(n) for n in cells.values()),
        impure_clusters=sum(1 for n in persons_per_cluster.values() if n >= 2),
    )


def resolved(
    truth: Mapping[Key, str], cluster_of: Mapping[Key, Hashable], review: Sequence[Pair]
) -> dict[Key, Hashable]:
    """The persons once every queued pair is decided right: true pairs merge their persons."""
    parent: dict[Hashable, Hashable] = {}

    def find(cluster: Hashable) -> Hashable:
        root = cluster
        while parent.get(root, root) != root:
            root = parent[root]
        while cluster != root:
            cluster, parent[cluster] = parent.get(cluster, cluster), root
        return root

    for a, b in review:
        if truth[a] == truth[b]:
            ra, rb = find(cluster_of[a]), find(cluster_of[b])
            if ra != rb:
                parent[ra] = rb
    return {key: find(cluster) for key, cluster in cluster_of.items()}


@dataclass(frozen=True)
class Scores:
    records: int
    auto: Pairwise
    review_pairs: int
    resolved: Pairwise
    seconds: float


def score(dataset: Dataset, outcome: Outcome) -> Scores:
    missing = [key for key in dataset.truth if key not in outcome.cluster_of]
    cluster_of: dict[Key, Hashable] = dict(outcome.cluster_of)
    if missing:
        outcome.notes.append(f"{len(missing)} records without a person: counted alone")
        for key in missing:
            cluster_of[key] = ("alone", key)
    return Scores(
        records=len(dataset.records),
        auto=pairwise(dataset.truth, cluster_of),
        review_pairs=len(outcome.review),
        resolved=pairwise(dataset.truth, resolved(dataset.truth, cluster_of, outcome.review)),
        seconds=outcome.seconds,
    )


def error_causes(
    dataset: Dataset, cluster_of: Mapping[Key, Hashable]
) -> tuple[Counter[str], Counter[str]]:
    """False-merge pairs by the relation of the two true persons ("unrelated" if none), and
    missed true pairs by the tags their records carry (a pair counts under each tag)."""
    merged: Counter[str] = Counter()
    by_cluster: dict[Hashable, Counter[str]] = {}
    for key, entity in dataset.truth.items():
        by_cluster.setdefault(cluster_of.get(key, ("alone", key)), Counter())[entity] += 1
    for persons in by_cluster.values():
        if len(persons) >= 2:
            for (a, na), (b, nb) in combinations(persons.items(), 2):
                merged[dataset.relations.get(frozenset((a, b)), "unrelated")] += na * nb
    missed: Counter[str] = Counter()
    members: dict[str, list[Key]] = {}
    for key, entity in dataset.truth.items():
        members.setdefault(entity, []).append(key)
    for keys in members.values():
        for a, b in combinations(keys, 2):
            if cluster_of.get(a, ("alone", a)) != cluster_of.get(b, ("alone", b)):
                tags = set(dataset.tags.get(a, ())) | set(dataset.tags.get(b, ()))
                missed.update(tags or {"(no tag)"})
    return merged, missed


def _top(counter: Counter[str], n: int = 8) -> str:
    return ", ".join(f"{name} {count:,}" for name, count in counter.most_common(n)) or "none"


# ---------------------------------------------------------------------------------------------
# Partage


def run_partage(dataset: Dataset) -> Outcome | str:
    """Partage's outcome, or why it could not run."""
    try:
        from partage.identity.engine import federate
    except ImportError as error:
        return f"engine not available ({error})"
    try:
        return run_linker(dataset, "Partage", federate)
    except Exception as error:  # the benchmark reports; the engine's traceback goes to stderr
        traceback.print_exc()
        return f"engine failed: {type(error).__name__}: {error}"


def run_linker(dataset: Dataset, label: str, federate: Callable[..., Any]) -> Outcome:
    last = [0.0, -1.0]  # time of the last line, records done then

    def progress(done: int, total: int) -> None:
        now = time.perf_counter()
        if (now - last[0] >= 5 or done == total) and done != last[1]:
            last[0], last[1] = now, done
            print(f"  [{dataset.name}] {label}: {done:,}/{total:,}", file=sys.stderr)

    started = time.perf_counter()
    federation = federate(dataset.records, progress=progress)
    seconds = time.perf_counter() - started
    review = [(tuple(a), tuple(b)) for a, b in federation.review]
    outcome = Outcome(label, dict(federation.person_of), review, seconds)
    already_together = sum(
        1 for a, b in review if federation.person_of.get(a) == federation.person_of.get(b)
    )
    if already_together:
        outcome.notes.append(f"{already_together} review pairs are already one person")
    return outcome


# ---------------------------------------------------------------------------------------------
# Splink


_LIGATURES = str.maketrans({"Œ": "OE", "œ": "oe", "Æ": "AE", "æ": "ae", "ß": "ss"})


def _ascii_upper(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.translate(_LIGATURES))
    return decomposed.encode("ascii", "ignore").decode("ascii").upper()


def _words(text: str) -> str | None:
    """Upper-case ASCII, punctuation to spaces, spaces collapsed; empty is NULL."""
    value = " ".join(re.sub(r"[^A-Z0-9]+", " ", _ascii_upper(text)).split())
    return value or None


def _name(text: str) -> str | None:
    """Letters only: 'Le Gall', 'LEGALL', 'le-gall' are one value (standard name cleaning)."""
    value = re.sub(r"[^A-Z]+", "", _ascii_upper(text))
    return value or None


def _identifier(text: str) -> str | None:
    value = re.sub(r"\D+", "", text)
    if value.startswith("0033"):
        value = "0" + value[4:]
    elif value.startswith("33") and len(value) == 11:
        value = "0" + value[2:]
    return value or None


_INSI_STATUSES = (IdentityStatus.qualified, IdentityStatus.recovered)


def splink_frame(records: Sequence[SourceRecord]) -> Any:
    """The records as the table Splink gets: one row each, unique_id = position."""
    import pandas as pd

    rows = []
    for position, record in enumerate(records):
        t = record.traits
        given_words = [w for g in t.given_names for w in (_words(g) or "").split()]
        rows.append(
            {
                "unique_id": position,
                "source": record.source,
                "surname": _name(t.birth_family_name),
                "used_name": _name(t.used_family_name),
                "forename": _name(t.first_given_name),
                "forenames": given_words or None,
                "birth_date": t.birth_date.isoformat() if t.birth_date else None,
                "sex": None if t.sex is Sex.unknown else t.sex.value,
                "birth_place": _words(t.birth_place_code),
                "address": _words(t.address),
                "postcode": _words(t.postal_code),
                "city": _words(t.city),
                "phone": _identifier(t.phone),
                # The INS as the INSi teleservice returned it (qualified or recovered): the
                # others may be typed, mistyped, or a parent's, and identity-vigilance rules
                # say not to trust them. FEBRL's social-security number is its only id.
                "ins": _words(t.ins)
                if record.status in _INSI_STATUSES or record.source == FEBRL_SOURCE
                else None,
            }
        )
    return pd.DataFrame(rows)


def splink_settings(frame: Any) -> tuple[Any, list[Any], list[Any], list[Any]]:
    """Settings, EM training rules and deterministic rules fitted to the columns present."""
    import splink.comparison_level_library as cll
    import splink.comparison_library as cl
    from splink import SettingsCreator, block_on
    from splink.blocking_rule_library import CustomRule

    def present(column: str, share: float = 0.01) -> bool:
        return bool(frame[column].notna().mean() >= share)

    several_given = bool(frame["forenames"].map(lambda v: v is not None and len(v) > 1).any())

    surname_levels: list[Any] = [
        cll.NullLevel("surname"),
        cll.ExactMatchLevel("surname").configure(tf_adjustment_column="surname"),
        cll.JaroWinklerLevel("surname", 0.92),
        cll.JaroWinklerLevel("surname", 0.88),
    ]
    if present("used_name"):
        surname_levels.append(
            cll.CustomLevel(
                "surname_l = used_name_r OR used_name_l = surname_r OR used_name_l = used_name_r",
                label_for_charts="birth name = used name",
            )
        )
    surname_levels += [cll.JaroWinklerLevel("surname", 0.7), cll.ElseLevel()]

    forename_levels: list[Any] = [
        cll.NullLevel("forename"),
        cll.ExactMatchLevel("forename").configure(tf_adjustment_column="forename"),
        cll.JaroWinklerLevel("forename", 0.92),
        cll.JaroWinklerLevel("forename", 0.88),
        cll.ColumnsReversedLevel("forename", "surname", symmetrical=True),
    ]
    if several_given:
        forename_levels.append(cll.ArrayIntersectLevel("forenames", 1))
    forename_levels += [cll.JaroWinklerLevel("forename", 0.7), cll.ElseLevel()]

    date_levels: list[Any] = [
        cll.NullLevel("birth_date"),
        cll.ExactMatchLevel("birth_date"),
        cll.CustomLevel(
            "substr(birth_date_l, 1, 4) = substr(birth_date_r, 1, 4)"
            " AND substr(birth_date_l, 6, 2) = substr(birth_date_r, 9, 2)"
            " AND substr(birth_date_l, 9, 2) = substr(birth_date_r, 6, 2)",
            label_for_charts="day and month swapped",
        ),
        cll.DamerauLevenshteinLevel("birth_date", 1),
        cll.CustomLevel(
            "substr(birth_date_l, 1, 4) = substr(birth_date_r, 1, 4)"
            " AND (substr(birth_date_l, 6, 5) = '01-01' OR substr(birth_date_r, 6, 5) = '01-01')",
            label_for_charts="same year, one side 1 January (day and month unknown)",
        ),
    ]
    if SPLINK_DATE_DIFFERENCE_LEVELS:
        date_levels += [
            cll.AbsoluteDateDifferenceLevel(
                "birth_date", input_is_string=True, threshold=threshold, metric=metric
            )
            for threshold, metric in SPLINK_DATE_DIFFERENCE_LEVELS
        ]
    date_levels.append(cll.ElseLevel())

    comparisons: list[Any] = [
        cl.CustomComparison(surname_levels, output_column_name="surname"),
        cl.CustomComparison(forename_levels, output_column_name="forename"),
        cl.CustomComparison(date_levels, output_column_name="birth_date"),
    ]
    if frame["source"].nunique() > 1:  # two records of one establishment: rarely one person
        comparisons.append(cl.ExactMatch("source"))
    if present("sex"):
        comparisons.append(cl.ExactMatch("sex"))
    if present("birth_place"):
        comparisons.append(cl.ExactMatch("birth_place").configure(term_frequency_adjustments=True))
    if present("phone"):
        comparisons.append(
            cl.CustomComparison(
                [
                    cll.NullLevel("phone"),
                    # TF: a number shared by a household counts for less than a personal one
                    cll.ExactMatchLevel("phone").configure(tf_adjustment_column="phone"),
                    cll.DamerauLevenshteinLevel("phone", 1),
                    cll.DamerauLevenshteinLevel("phone", 2),
                    cll.ElseLevel(),
                ],
                output_column_name="phone",
            )
        )
    if present("ins"):
        comparisons.append(cl.DamerauLevenshteinAtThresholds("ins", [1]))
    if present("postcode"):
        comparisons.append(
            cl.CustomComparison(
                [
                    cll.NullLevel("postcode"),
                    cll.ExactMatchLevel("postcode").configure(tf_adjustment_column="postcode"),
                    cll.LevenshteinLevel("postcode", 1),
                    cll.ElseLevel(),
                ],
                output_column_name="postcode",
            )
        )
    if present("city"):
        comparisons.append(
            cl.CustomComparison(
                [
                    cll.NullLevel("city"),
                    cll.ExactMatchLevel("city").configure(tf_adjustment_column="city"),
                    cll.JaroWinklerLevel("city", 0.9),
                    cll.ElseLevel(),
                ],
                output_column_name="city",
            )
        )
    if present("address"):
        comparisons.append(
            cl.CustomComparison(
                [
                    cll.NullLevel("address"),
                    cll.ExactMatchLevel("address").configure(tf_adjustment_column="address"),
                    cll.JaroWinklerLevel("address", 0.95),
                    cll.JaroWinklerLevel("address", 0.85),
                    cll.ElseLevel(),
                ],
                output_column_name="address",
            )
        )

    blocking: list[Any] = [
        block_on("surname", "forename"),
        block_on("birth_date"),
        block_on("forename", "substr(birth_date, 1, 4)"),
        block_on("surname", "substr(birth_date, 1, 4)"),
        CustomRule("l.surname = r.forename AND l.forename = r.surname"),
    ]
    if present("phone"):
        blocking.append(block_on("phone"))
    if present("ins"):
        blocking.append(block_on("ins"))
    if present("used_name"):
        blocking += [
            block_on("used_name", "forename"),
            CustomRule("l.surname = r.used_name AND l.forename = r.forename"),
        ]
    if present("postcode"):
        blocking.append(block_on("postcode", "substr(forename, 1, 2)"))
    if present("address"):
        blocking.append(block_on("address"))

    settings = SettingsCreator(
        link_type="dedupe_only",
        comparisons=comparisons,
        blocking_rules_to_generate_predictions=blocking,
        retain_matching_columns=False,
        retain_intermediate_calculation_columns=False,
    )
    training = [block_on("birth_date"), block_on("surname", "forename")]
    deterministic: list[Any] = [block_on("surname", "forename", "birth_date")]
    if present("ins"):
        deterministic.append(block_on("ins", "birth_date"))
    return settings, training, deterministic, blocking


@dataclass
class SplinkRun:
    by_threshold: dict[float, Outcome]
    candidate_pairs: int
    blocking_recall: float
    lambda_: float
    train_seconds: float
    predict_seconds: float


def run_splink(dataset: Dataset) -> SplinkRun:
    from splink import DuckDBAPI, Linker

    label = f"[{dataset.name}] Splink"
    started = time.perf_counter()
    frame = splink_frame(dataset.records)
    keys = [record.key for record in dataset.records]
    settings, training, deterministic, _ = splink_settings(frame)
    db = DuckDBAPI()
    table = db.register(frame, dataset_display_name=f"records_{dataset.name}")
    linker = Linker(table, settings, log_level=logging.ERROR)

    print(f"  {label}: training", file=sys.stderr)
    linker.training.estimate_probability_two_random_records_match(
        deterministic, recall=SPLINK_DETERMINISTIC_RECALL
    )
    linker.training.estimate_u_using_random_sampling(max_pairs=SPLINK_U_PAIRS, seed=1)
    for rule in training:
        linker.training.estimate_parameters_using_expectation_maximisation(rule)
    trained = time.perf_counter()

    print(f"  {label}: predicting", file=sys.stderr)
    predictions = linker.inference.predict(warning_mode="never")
    scored = predictions.as_pandas_dataframe()
    predicted = time.perf_counter()
    base_seconds = predicted - started

    left = scored["unique_id_l"].to_numpy()
    right = scored["unique_id_r"].to_numpy()
    probability = scored["match_probability"].to_numpy()
    truth = [dataset.truth[key] for key in keys]
    true_candidates = sum(1 for a, b in zip(left, right, strict=True) if truth[a] == truth[b])

    by_threshold: dict[float, Outcome] = {}
    for threshold in SPLINK_SWEEP:
        cluster_started = time.perf_counter()
        clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(
            predictions, threshold_match_probability=threshold
        )
        table_clusters = clusters.as_pandas_dataframe()
        cluster_seconds = time.perf_counter() - cluster_started
        clusters.drop_table_from_database_and_remove_from_cache()
        cluster_of: dict[Key, Hashable] = {
            keys[int(uid)]: str(cid)
            for uid, cid in zip(
                table_clusters["unique_id"], table_clusters["cluster_id"], strict=True
            )
        }
        review = [
            (keys[int(a)], keys[int(b)])
            for a, b, p in zip(left, right, probability, strict=True)
            if SPLINK_REVIEW_FLOOR <= p < threshold
            and cluster_of[keys[int(a)]] != cluster_of[keys[int(b)]]
        ]
        by_threshold[threshold] = Outcome(
            f"Splink p≥{threshold:g}", cluster_of, review, base_seconds + cluster_seconds
        )
    true_pairs = dataset.true_pairs
    return SplinkRun(
        by_threshold=by_threshold,
        candidate_pairs=len(scored),
        blocking_recall=true_candidates / true_pairs if true_pairs else 1.0,
        lambda_=linker._settings_obj._probability_two_random_records_match,
        train_seconds=trained - started,
        predict_seconds=predicted - trained,
    )


# ---------------------------------------------------------------------------------------------
# Report


def _row(name: str, values: Sequence[str]) -> str:
    return f"  {name:<34}" + "".join(f"{v:>22}" for v in values)


def print_table(columns: Sequence[tuple[str, Scores]]) -> None:
    print(_row("", [label for label, _ in columns]))
    fields: list[tuple[str, Callable[[Scores], str]]] = [
        ("records", lambda s: f"{s.records:,}"),
        ("true pairs", lambda s: f"{s.auto.true_pairs:,}"),
        ("predicted pairs (automatic)", lambda s: f"{s.auto.predicted_pairs:,}"),
        ("precision", lambda s: f"{s.auto.precision:.4f}"),
        ("recall", lambda s: f"{s.auto.recall:.4f}"),
        ("pairwise F1", lambda s: f"{s.auto.f1:.4f}"),
        ("false-merge pairs", lambda s: f"{s.auto.false_merges:,}"),
        ("persons holding ≥ 2 true persons", lambda s: f"{s.auto.impure_clusters:,}"),
        ("review queue (pairs)", lambda s: f"{s.review_pairs:,}"),
        ("review queue (% of records)", lambda s: f"{100 * s.review_pairs / s.records:.2f} %"),
        ("F1 if queue resolved perfectly", lambda s: f"{s.resolved.f1:.4f}"),
        ("wall time", lambda s: f"{s.seconds:.1f} s"),
    ]
    for name, render in fields:
        print(_row(name, [render(s) for _, s in columns]))


@dataclass
class Verdict:
    target: str
    passed: bool
    detail: str


def verdicts(
    dataset: Dataset,
    persons: int,
    partage: Scores | None,
    splink_best: Scores | None,
    splink_label: str,
) -> list[Verdict]:
    out: list[Verdict] = []
    name = dataset.name
    if partage is not None:
        if name == "french":
            sized = persons >= FRENCH_MIN_PERSONS and partage.records >= FRENCH_MIN_RECORDS
            size = f"{persons:,} persons, {partage.records:,} records"
            out.append(
                Verdict(
                    f"french size ≥ {FRENCH_MIN_PERSONS:,} persons, ≥ {FRENCH_MIN_RECORDS:,} "
                    "records",
                    sized,
                    size,
                )
            )
            out.append(
                Verdict(
                    f"french F1 ≥ {FRENCH_F1_TARGET}",
                    partage.auto.f1 >= FRENCH_F1_TARGET,
                    f"{partage.auto.f1:.4f}",
                )
            )
            out.append(
                Verdict(
                    "french zero false automatic merges",
                    partage.auto.false_merges == 0,
                    f"{partage.auto.false_merges:,} pairs, "
                    f"{partage.auto.impure_clusters:,} persons",
                )
            )
            share = partage.review_pairs / partage.records
            out.append(
                Verdict(
                    f"french review queue < {100 * FRENCH_QUEUE_TARGET:g} % of records",
                    share < FRENCH_QUEUE_TARGET,
                    f"{100 * share:.2f} % ({partage.review_pairs:,} pairs)",
                )
            )
        else:
            out.append(
                Verdict(
                    f"{name} F1 ≥ {FEBRL_F1_TARGET}",
                    partage.auto.f1 >= FEBRL_F1_TARGET,
                    f"{partage.auto.f1:.4f}",
                )
            )
    if partage is not None and splink_best is not None:
        out.append(
            Verdict(
                f"{name} Partage F1 ≥ Splink F1 ({splink_label})",
                partage.auto.f1 >= splink_best.auto.f1,
                f"{partage.auto.f1:.4f} vs {splink_best.auto.f1:.4f}",
            )
        )
        p_fm, s_fm = partage.auto.false_merges, splink_best.auto.false_merges
        out.append(
            Verdict(
                f"{name} fewer false merges than Splink ({splink_label})",
                p_fm < s_fm or p_fm == s_fm == 0,
                f"{p_fm:,} vs {s_fm:,} pairs" + (" (both zero)" if p_fm == s_fm == 0 else ""),
            )
        )
    return out


def run_dataset(dataset: Dataset, persons: int, with_splink: bool) -> list[Verdict]:
    print()
    print(
        f"== {dataset.name}: {dataset.description} — {len(dataset.records):,} records, "
        f"{dataset.persons:,} true persons, {dataset.true_pairs:,} true pairs"
    )
    columns: list[tuple[str, Scores]] = []
    outcomes: list[tuple[str, Outcome]] = []
    notes: list[str] = []

    partage_scores: Scores | None = None
    partage = run_partage(dataset)
    if isinstance(partage, str):
        notes.append(f"Partage: {partage}")
    else:
        partage_scores = score(dataset, partage)
        columns.append(("Partage", partage_scores))
        outcomes.append(("Partage", partage))
        notes += [f"Partage: {note}" for note in partage.notes]

    best_scores: Scores | None = None
    best_label = ""
    if with_splink:
        run = run_splink(dataset)
        sweep = {t: score(dataset, outcome) for t, outcome in run.by_threshold.items()}
        best = max(sweep, key=lambda t: (sweep[t].auto.f1, t))
        best_scores = sweep[best]
        best_label = f"p≥{best:g}, oracle"
        columns.append((f"Splink p≥{SPLINK_THRESHOLD:g}", sweep[SPLINK_THRESHOLD]))
        columns.append((f"Splink best p≥{best:g}", best_scores))
        outcomes.append((f"Splink p≥{best:g}", run.by_threshold[best]))
        notes.append(
            f"Splink: λ = {run.lambda_:.3g}, {run.candidate_pairs:,} candidate pairs "
            f"(blocking reaches {100 * run.blocking_recall:.2f} % of true pairs), "
            f"training {run.train_seconds:.1f} s, prediction {run.predict_seconds:.1f} s; "
            f"review band {SPLINK_REVIEW_FLOOR:g} ≤ p < threshold"
        )
        notes.append(
            "Splink sweep (threshold: precision/recall/F1, false-merge pairs): "
            + "; ".join(
                f"{t:g}: {s.auto.precision:.4f}/{s.auto.recall:.4f}/{s.auto.f1:.4f}, "
                f"{s.auto.false_merges:,}"
                for t, s in sweep.items()
            )
        )
    if columns:
        print_table(columns)
    for note in notes:
        print(f"  · {note}")
    if dataset.relations or dataset.tags:
        for label, outcome in outcomes:
            merged, missed = error_causes(dataset, outcome.cluster_of)
            print(f"  · {label}: false-merge pairs by relation: {_top(merged)}")
            print(f"  · {label}: missed true pairs by record tag: {_top(missed)}")
    return verdicts(dataset, persons, partage_scores, best_scores, best_label)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--persons", type=int, default=FRENCH_MIN_PERSONS)
    parser.add_argument("--seed", type=int, default=0, help="of the French generator")
    parser.add_argument(
        "--duplicate-rate",
        type=float,
        default=FRENCH_DUPLICATE_RATE,
        help="French: share of persons with several records",
    )
    parser.add_argument("--only", choices=DATASETS)
    parser.add_argument("--no-splink", action="store_true")
    args = parser.parse_args(argv)

    names = [args.only] if args.only else list(DATASETS)
    all_verdicts: list[Verdict] = []
    for name in names:
        started = time.perf_counter()
        try:
            dataset = load(
                name, persons=args.persons, seed=args.seed, duplicate_rate=args.duplicate_rate
            )
        except ImportError as error:
            print(f"\n== {name}: not available ({error})")
            continue
        print(f"  [{name}] loaded in {time.perf_counter() - started:.1f} s", file=sys.stderr)
        all_verdicts += run_dataset(dataset, args.persons, not args.no_splink)

    print()
    print("Verdicts")
    if not all_verdicts:
        print("  (none: Partage's engine did not run)")
    for verdict in all_verdicts:
        print(f"  {'PASS' if verdict.passed else 'FAIL'}  {verdict.target}: {verdict.detail}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
