"""A review's score explained: each trait's agreement level and weight, the rule that
applied, where the score stands against the thresholds.

The chart is drawn here as plain geometry for server-rendered SVG (no script, no inline
style: the strict CSP).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from partage.identity.features import COMPARISONS
from partage.web.i18n import N_, gettext
from partage.web.identity_views import number, percent

# Labels: msgids in English, French in the catalogue.
TRAIT_LABELS: dict[str, str] = {
    "family_name": N_("Birth family name"),
    "given_names": N_("Given names"),
    "birth_date": N_("Birth date"),
    "sex": N_("Sex"),
    "birth_place": N_("Birth place"),
    "address": N_("Address"),
    "phone": N_("Phone"),
    "ins": N_("INS"),
    "used_name": N_("Used name"),
}
LEVEL_LABELS: dict[str, str] = {
    "different": N_("different"),
    "similar": N_("similar"),
    "birth/used name crossed": N_("birth and used names crossed"),
    "typo": N_("a typing error"),
    "same sound": N_("same sound"),
    "same without particles": N_("same without particles"),
    "identical": N_("identical"),
    "truncated or compound": N_("truncated or compound"),
    "reordered": N_("in another order"),
    "same first, other given names differ": N_("same first given name, the others differ"),
    "one digit or part differs": N_("one digit or part differs"),
    "one side 01/01": N_("01/01 on one side"),
    "day and month swapped": N_("day and month swapped"),
    "identical 01/01": N_("identical, 01/01"),
    "same department": N_("same department"),
    "same commune": N_("same commune"),
    "same address": N_("same address"),
    "one character differs": N_("one character differs"),
}
# Keyed by the rules' values, as explanations store them (an unknown rule shows as written).
RULE_LABELS: dict[str, str] = {
    "same qualified INS": N_("The same qualified INS: one person."),
    "different INS from the national teleservice": N_(
        "Two different INS from the national teleservice: two persons."
    ),
    "same birth date, different given names (twins?)": N_(
        "Same birth date, different given names: twins? Never linked automatically."
    ),
    "different sex and given names": N_(
        "Different sex and given names: a brother and a sister? Never linked automatically."
    ),
    "birth dates a generation apart (parent and child?)": N_(
        "Birth dates a generation apart: a parent and a child? Never linked automatically."
    ),
    "birth dates differ": N_("Birth dates differ: at most a review, never an automatic link."),
    "birth places in different departments": N_(
        "Birth places in different departments: at most a review, never an automatic link."
    ),
    "sex differs": N_("Sex differs: at most a review, never an automatic link."),
    "marked as not a duplicate": N_("Marked as not a duplicate by an identity-vigilance officer."),
}
POSITIVE, NEGATIVE = "#1e6b34", "#a1191d"


@dataclass(frozen=True)
class Contribution:
    trait: str
    level: str | None  # None: not compared (missing on a side)
    weight: float
    weight_text: str
    # Bar geometry (SVG user units)
    y: float
    x: float
    width: float
    text_x: float
    text_anchor: str
    colour: str


@dataclass(frozen=True)
class ScoreExplanation:
    weight: str
    probability: str | None
    rule: str | None
    upper: str | None
    lower: str | None
    zone: str  # above | between | below | unknown
    contributions: list[Contribution]
    chart_width: int
    chart_height: int
    label_width: int
    zero_x: float
    bar_height: int


# Geometry of the explanation chart: a bar per trait, right of the axis when the trait
# agrees (a positive weight), left when it disagrees.
EXPLAIN_WIDTH = 640
EXPLAIN_LABEL = 170
EXPLAIN_ROW = 26
EXPLAIN_BAR = 16
EXPLAIN_HALF = 190  # the longest bar, each side of the axis
EXPLAIN_ZERO = EXPLAIN_LABEL + 40 + EXPLAIN_HALF


def score_explanation(
    explanation: Mapping[str, Any], score: float, locale: str
) -> ScoreExplanation:
    def t(message: str) -> str:
        return gettext(locale, message)

    levels: list[int | None] = list(explanation.get("levels") or [])
    weights: list[float] = [float(w) for w in explanation.get("weights") or []]
    largest = max((abs(w) for w in weights), default=0.0) or 1.0
    contributions: list[Contribution] = []
    for index, (name, level_names) in enumerate(COMPARISONS):
        if index >= len(levels):
            break
        level = levels[index]
        weight = weights[index] if index < len(weights) else 0.0
        width = abs(weight) / largest * EXPLAIN_HALF
        if level is not None and weight != 0:
            width = max(width, 2.0)
        positive = weight >= 0
        x = EXPLAIN_ZERO if positive else EXPLAIN_ZERO - width
        contributions.append(
            Contribution(
                trait=t(TRAIT_LABELS.get(name, name)),
                level=t(LEVEL_LABELS.get(level_names[level], level_names[level]))
                if level is not None and 0 <= level < len(level_names)
                else None,
                weight=weight,
                weight_text=number(weight, locale, signed=True),
                y=len(contributions) * EXPLAIN_ROW,
                x=round(x, 2),
                width=round(width if level is not None else 0.0, 2),
                text_x=round(x + width + 6 if positive else x - 6, 2),
                text_anchor="start" if positive else "end",
                colour=POSITIVE if positive else NEGATIVE,
            )
        )
    upper, lower = explanation.get("upper"), explanation.get("lower")
    weight = float(explanation.get("weight", score))
    zone = "unknown"
    if isinstance(upper, int | float) and isinstance(lower, int | float):
        zone = "above" if weight >= upper else "below" if weight < lower else "between"
    probability = explanation.get("probability")
    rule = explanation.get("rule")
    return ScoreExplanation(
        weight=number(weight, locale),
        probability=percent(float(probability), locale)
        if isinstance(probability, int | float)
        else None,
        rule=t(RULE_LABELS.get(rule, rule)) if isinstance(rule, str) and rule else None,
        upper=number(float(upper), locale) if isinstance(upper, int | float) else None,
        lower=number(float(lower), locale) if isinstance(lower, int | float) else None,
        zone=zone,
        contributions=contributions,
        chart_width=EXPLAIN_WIDTH,
        chart_height=max(len(contributions), 1) * EXPLAIN_ROW,
        label_width=EXPLAIN_LABEL,
        zero_x=EXPLAIN_ZERO,
        bar_height=EXPLAIN_BAR,
    )
