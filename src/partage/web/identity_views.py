"""The identity-vigilance console's queries and the rows its pages show.

Reads only: the console's actions go through `partage.identity.operations`. Every value a
page shows is built here in the reader's language (labels of statuses, methods, agreement
levels; dates; numbers); the templates only lay them out. The charts are drawn here as
plain geometry for server-rendered SVG (no script, no inline style: the strict CSP).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from babel.dates import format_date
from babel.numbers import format_decimal
from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.orm import Session

from partage.db import utcnow
from partage.identity.features import COMPARISONS
from partage.identity.ins import InvalidIns, format_ins, normalize_ins
from partage.identity.models import (
    IdentityEvent,
    Link,
    LinkMethod,
    LocalIdentity,
    Person,
    PersonStatus,
    Review,
    ReviewStatus,
)
from partage.identity.normalize import address_form, compact, digits, fold
from partage.identity.store import ATTRIBUTES
from partage.identity.traits import IdentityStatus
from partage.security.models import Establishment
from partage.web.directory_views import date_time
from partage.web.i18n import N_, gettext

CONSOLE = "/identitovigilance"
QUEUE_PAGE = 25
SEARCH_LIMIT = 50
HISTORY_LIMIT = 200
CHART_DAYS = 30
# Days are counted as people there live them (the directory's dates use the same zone).
PARIS = ZoneInfo("Europe/Paris")

# --- labels (msgids in English; French in the catalogue) ---------------------------------

STATUS_LABELS: dict[str, str] = {
    IdentityStatus.provisional: N_("Provisional identity"),
    IdentityStatus.recovered: N_("Recovered identity (INS retrieved, not checked)"),
    IdentityStatus.validated: N_("Validated identity (checked, no INS)"),
    IdentityStatus.qualified: N_("Qualified identity"),
}
STATUS_SHORT: dict[str, str] = {
    IdentityStatus.provisional: N_("Provisional"),
    IdentityStatus.recovered: N_("Recovered"),
    IdentityStatus.validated: N_("Validated"),
    IdentityStatus.qualified: N_("Qualified"),
}
ATTRIBUTE_LABELS: dict[str, str] = {
    "doubtful": N_("Doubtful identity"),
    "fictitious": N_("Fictitious identity"),
    "homonym": N_("Homonym"),
    "usurped": N_("Usurped identity"),
}
SEX_LABELS = {"M": N_("Male"), "F": N_("Female"), "U": N_("Unknown")}
METHOD_LABELS: dict[str, str] = {
    LinkMethod.origin: N_("Own person (creation)"),
    LinkMethod.qualified_ins: N_("Same qualified INS"),
    LinkMethod.probabilistic: N_("Automatic (score)"),
    LinkMethod.manual: N_("Manual"),
    LinkMethod.a40: N_("Merged by the establishment (A40)"),
    LinkMethod.unmerge: N_("Unmerge"),
}
REVIEW_STATUS_LABELS: dict[str, str] = {
    ReviewStatus.open: N_("To review"),
    ReviewStatus.linked: N_("Linked: same person"),
    ReviewStatus.not_duplicate: N_("Not a duplicate"),
    ReviewStatus.superseded: N_("Superseded"),
}
EVENT_LABELS: dict[str, str] = {
    "created": N_("Identity received"),
    "updated": N_("Updated by the establishment"),
    "persons_merged": N_("Persons merged"),
    "not_duplicate": N_("Marked as not a duplicate"),
    "unmerged": N_("Link undone (unmerge)"),
    "ins_attached": N_("INS attached"),
    "status_changed": N_("Status changed"),
    "local_merged": N_("Merged by the establishment (A40)"),
}
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
# The dashboard's links by method; origin and unmerge are not links made.
CHARTED_METHODS: tuple[tuple[str, str, str], ...] = (
    (LinkMethod.probabilistic, N_("Automatic"), "#0b4f8a"),
    (LinkMethod.qualified_ins, N_("Qualified INS"), "#1e6b34"),
    (LinkMethod.manual, N_("Manual"), "#8a4b00"),
    (LinkMethod.a40, N_("Establishment (A40)"), "#6b3fa0"),
)
STATUS_COLOURS = {
    IdentityStatus.provisional: "#8a4b00",
    IdentityStatus.recovered: "#0b4f8a",
    IdentityStatus.validated: "#4b5563",
    IdentityStatus.qualified: "#1e6b34",
}
POSITIVE, NEGATIVE = "#1e6b34", "#a1191d"

# --- the domain's refusals in the reader's language -----------------------------------------

_PROBLEMS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), message)
    for pattern, message in (
        (r"^a reason is required$", N_("Give the reason: it is required and kept in the history.")),
        (
            r"^no such open review$",
            N_("This potential duplicate has already been dealt with. Reload the page."),
        ),
        (r"^no such local identity$", N_("This identity does not exist.")),
        (
            r"^no such active person$",
            N_("No active person has this identifier (unknown, or already merged into another)."),
        ),
        (r"^a person cannot be merged into itself$", N_("A person cannot be merged with itself.")),
        (
            r"^an identity is not a duplicate of itself$",
            N_("An identity is not a duplicate of itself."),
        ),
        (
            r"^these identities are linked: unmerge one of them first$",
            N_(
                "These two identities belong to the same person: undo the link of one of "
                "them first (on the person's page)."
            ),
        ),
        (
            r"^this identity was merged into another id of its domain$",
            N_("This identity was merged by its establishment into another of its ids (A40)."),
        ),
        (
            r"^this identity is alone in its person: there is nothing to undo$",
            N_("This identity is alone in its person: there is no link to undo."),
        ),
        (
            r"^the status (?P<value>\w+) needs an INS: attach it first$",
            N_("The status %(value)s needs an INS: attach the INS first."),
        ),
        (r"^unknown identity attributes", N_("Unknown identity attribute.")),
        (r"^invalid INS: the INS is empty$", N_("Enter the INS.")),
        (
            r"^invalid INS: an INS has 15 characters \(13 and a 2-digit key\), not (?P<value>\d+)$",
            N_("An INS has 15 characters (13 and a 2-digit key), not %(value)s."),
        ),
        (
            r"^invalid INS: key (?P<key>\d+) does not match the number "
            r"\(expected (?P<value>\d+)\)$",
            N_("The key %(key)s does not match the number (expected %(value)s): check the INS."),
        ),
        (
            r"^invalid INS: first digit [78]",
            N_("This is a provisional number of a health insurance fund, not an INS."),
        ),
        (r"^invalid INS: first digit", N_("The first digit of an INS is 1 or 2.")),
        (
            r"^invalid INS: birth month (?P<value>\d+) is impossible",
            N_("The birth month %(value)s of this INS is impossible."),
        ),
        (
            r"^invalid INS: character",
            N_("An INS has digits only (2A or 2B for a birth in Corsica)."),
        ),
        (r"^invalid INS", N_("This INS is not valid: check it.")),
    )
)


def explain(locale: str, problem: Exception) -> str:
    """An `IdentityError` as a sentence in the reader's language (as written if unknown)."""
    text = str(problem)
    for pattern, message in _PROBLEMS:
        match = pattern.match(text)
        if match:
            return gettext(locale, message) % match.groupdict()
    return text


# --- small pieces ---------------------------------------------------------------------------


def birth_date(value: date | None, locale: str) -> str:
    """Day/month/year in French (a swapped day and month must show); ISO in English."""
    if value is None:
        return ""
    return format_date(value, "dd/MM/yyyy" if locale == "fr" else "yyyy-MM-dd", locale=locale)


def day_label(value: date, locale: str) -> str:
    return format_date(value, "d MMM", locale=locale)


def number(value: float, locale: str, *, signed: bool = False) -> str:
    pattern = "+#,##0.0;-#,##0.0" if signed else "#,##0.##"
    return format_decimal(value, pattern, locale=locale)


def percent(value: float, locale: str) -> str:
    sign = "\u202f%" if locale == "fr" else "%"
    if value >= 0.9995:
        return "> " + format_decimal(99.9, "#,##0.0", locale=locale) + sign
    return format_decimal(value * 100, "#,##0.0", locale=locale) + sign


def shown_ins(ins: str) -> str:
    if not ins:
        return ""
    try:
        return format_ins(ins)
    except InvalidIns:
        return ins


def author_label(author: str) -> str:
    """ "account:jdupont" → "jdupont"; systems keep their kind ("system:hl7")."""
    kind, _, label = author.partition(":")
    return label if kind == "account" and label else author


def person_href(person_id: uuid.UUID) -> str:
    return f"{CONSOLE}/personnes/{person_id}"


def identity_href(identity_id: uuid.UUID) -> str:
    return f"{CONSOLE}/identites/{identity_id}"


def review_href(review_id: uuid.UUID) -> str:
    return f"{CONSOLE}/doublons/{review_id}"


# --- identities as pages show them ----------------------------------------------------------


@dataclass(frozen=True)
class IdentityView:
    id: uuid.UUID
    establishment: str
    establishment_code: str
    local_id: str
    birth_family_name: str
    used_family_name: str
    given_names: str
    sex: str
    sex_label: str
    birth_date: str
    birth_place: str
    address: str
    phone: str
    ins: str
    ins_oid: str
    status: str
    status_label: str
    attributes: list[str]
    active: bool
    replaced_by: uuid.UUID | None
    person_id: uuid.UUID
    person_identities: int
    origin_person_id: uuid.UUID
    version: int
    created: str | None
    updated: str | None

    @property
    def href(self) -> str:
        return identity_href(self.id)

    @property
    def person_href(self) -> str:
        return person_href(self.person_id)

    @property
    def name(self) -> str:
        """ "MARTIN (DURAND) Marie Louise": birth name, used name, given names."""
        used = f" ({self.used_family_name})" if self.used_family_name else ""
        return f"{self.birth_family_name}{used} {self.given_names}".strip()

    @property
    def domain(self) -> str:
        return f"{self.establishment} · {self.local_id}"


def establishments_by_id(
    session: Session, ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, Establishment]:
    wanted = set(ids)
    if not wanted:
        return {}
    rows = session.scalars(select(Establishment).where(Establishment.id.in_(wanted)))
    return {row.id: row for row in rows}


def identity_counts(session: Session, person_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, int]:
    """How many active identities each of these persons has."""
    wanted = set(person_ids)
    if not wanted:
        return {}
    rows = session.execute(
        select(LocalIdentity.person_id, func.count())
        .where(LocalIdentity.person_id.in_(wanted), LocalIdentity.active)
        .group_by(LocalIdentity.person_id)
    )
    return {person_id: int(count) for person_id, count in rows}


def identity_views(
    session: Session, rows: Sequence[LocalIdentity], locale: str
) -> list[IdentityView]:
    establishments = establishments_by_id(session, (r.establishment_id for r in rows))
    counts = identity_counts(session, (r.person_id for r in rows))
    return [identity_view(r, establishments, counts, locale) for r in rows]


def identity_view(
    row: LocalIdentity,
    establishments: Mapping[uuid.UUID, Establishment],
    counts: Mapping[uuid.UUID, int],
    locale: str,
) -> IdentityView:
    def t(message: str) -> str:
        return gettext(locale, message)

    establishment = establishments.get(row.establishment_id)
    town = " ".join(part for part in (row.postal_code, row.city) if part)
    return IdentityView(
        id=row.id,
        establishment=establishment.name if establishment else "",
        establishment_code=establishment.code if establishment else "",
        local_id=row.local_id,
        birth_family_name=row.birth_family_name,
        used_family_name=row.used_family_name,
        given_names=row.given_names,
        sex=row.sex,
        sex_label=t(SEX_LABELS.get(row.sex, row.sex)),
        birth_date=birth_date(row.birth_date, locale),
        birth_place=row.birth_place_code,
        address=", ".join(part for part in (row.address, town) if part),
        phone=row.phone,
        ins=shown_ins(row.ins),
        ins_oid=row.ins_oid,
        status=row.status,
        status_label=t(STATUS_LABELS.get(row.status, row.status)),
        attributes=[t(ATTRIBUTE_LABELS[name]) for name in ATTRIBUTES if getattr(row, name)],
        active=row.active,
        replaced_by=row.replaced_by_id,
        person_id=row.person_id,
        person_identities=counts.get(row.person_id, 0),
        origin_person_id=row.origin_person_id,
        version=row.version,
        created=date_time(row.created_at, locale),
        updated=date_time(row.updated_at, locale),
    )


# --- the queue ------------------------------------------------------------------------------


class InvalidPage(ValueError):
    """A page token this queue did not write."""


@dataclass(frozen=True)
class QueueRow:
    id: uuid.UUID
    score: str
    probability: str
    proposed: str | None
    first: IdentityView
    second: IdentityView

    @property
    def href(self) -> str:
        return review_href(self.id)


@dataclass(frozen=True)
class QueuePage:
    rows: list[QueueRow]
    total: int
    next_token: str | None


def _queue_order(oldest: bool) -> tuple[Any, ...]:
    if oldest:
        return (Review.created_at.asc(), Review.id.asc())
    return (Review.score.desc(), Review.id.asc())


def _after(token: str, oldest: bool) -> Any:
    """The condition for the rows after a page token: "<score or time>_<review id>"."""
    value, _, row_id = token.rpartition("_")
    try:
        last_id = uuid.UUID(row_id)
        if oldest:
            moment = datetime.fromisoformat(value)
            if moment.tzinfo is None:
                raise ValueError("naive")
            return or_(
                Review.created_at > moment,
                and_(Review.created_at == moment, Review.id > last_id),
            )
        score = float(value)
    except ValueError:
        raise InvalidPage(token) from None
    return or_(Review.score < score, and_(Review.score == score, Review.id > last_id))


def _token(review: Review, oldest: bool) -> str:
    value = review.created_at.isoformat() if oldest else repr(float(review.score))
    return f"{value}_{review.id}"


def open_reviews(
    session: Session, *, oldest: bool, after: str | None, locale: str, size: int = QUEUE_PAGE
) -> QueuePage:
    statement = select(Review).where(Review.status == ReviewStatus.open)
    if after:
        statement = statement.where(_after(after, oldest))
    reviews = list(session.scalars(statement.order_by(*_queue_order(oldest)).limit(size + 1)))
    more = len(reviews) > size
    reviews = reviews[:size]
    total = session.scalar(
        select(func.count()).select_from(Review).where(Review.status == ReviewStatus.open)
    )
    ids = {i for r in reviews for i in (r.first_id, r.second_id)}
    rows = list(session.scalars(select(LocalIdentity).where(LocalIdentity.id.in_(ids))))
    views = {v.id: v for v in identity_views(session, rows, locale)}
    return QueuePage(
        rows=[
            QueueRow(
                id=r.id,
                score=number(r.score, locale),
                probability=percent(float(r.explanation.get("probability", 0.0)), locale),
                proposed=date_time(r.created_at, locale),
                first=views[r.first_id],
                second=views[r.second_id],
            )
            for r in reviews
            if r.first_id in views and r.second_id in views
        ],
        total=int(total or 0),
        next_token=_token(reviews[-1], oldest) if more and reviews else None,
    )


def next_open_review(session: Session, *, excluding: uuid.UUID | None = None) -> uuid.UUID | None:
    """The review at the top of the queue (highest score), to go on with."""
    statement = select(Review.id).where(Review.status == ReviewStatus.open)
    if excluding is not None:
        statement = statement.where(Review.id != excluding)
    return session.scalar(statement.order_by(*_queue_order(False)).limit(1))


# --- a review: the two identities side by side, and the score explained ---------------------


@dataclass(frozen=True)
class TraitRow:
    label: str
    first: str
    second: str
    # same | different | one_side | empty | info (not compared: establishment, IPP)
    state: str
    strict: bool = False
    first_href: str | None = None
    second_href: str | None = None
    note: str | None = None  # what the comparison column says instead of the state

    @property
    def differs(self) -> bool:
        return self.state == "different"


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


@dataclass(frozen=True)
class ReviewView:
    id: uuid.UUID
    status: str
    status_label: str
    open: bool
    proposed: str | None
    resolved: str | None
    resolved_by: str | None
    reason: str | None
    first: IdentityView
    second: IdentityView
    rows: list[TraitRow]
    differences: int
    same_person: bool
    explanation: ScoreExplanation

    @property
    def href(self) -> str:
        return review_href(self.id)


def _state(first: str, second: str, same: bool) -> str:
    if not first and not second:
        return "empty"
    if not first or not second:
        return "one_side"
    return "same" if same else "different"


def _row(label: str, first: str, second: str, key: Callable[[str], str], **kw: Any) -> TraitRow:
    return TraitRow(label, first, second, _state(first, second, key(first) == key(second)), **kw)


def _status_text(view: IdentityView, locale: str) -> str:
    parts = [f"{view.status} · {view.status_label}", *view.attributes]
    if not view.active:
        parts.append(gettext(locale, N_("Retired by its establishment (A40)")))
    return " · ".join(parts)


def trait_rows(a: IdentityView, b: IdentityView, locale: str) -> list[TraitRow]:
    def t(message: str) -> str:
        return gettext(locale, message)

    same_status = (a.status, a.attributes, a.active) == (b.status, b.attributes, b.active)
    same_person = a.person_id == b.person_id

    def person(view: IdentityView) -> str:
        return t(N_("%(id)s · identities: %(count)s")) % {
            "id": str(view.person_id)[:8],
            "count": view.person_identities,
        }

    return [
        _row(
            t(N_("Birth family name")),
            a.birth_family_name,
            b.birth_family_name,
            compact,
            strict=True,
        ),
        _row(t(N_("Used name")), a.used_family_name, b.used_family_name, compact),
        _row(t(N_("Given names")), a.given_names, b.given_names, fold, strict=True),
        _row(t(N_("Sex")), a.sex_label, b.sex_label, str, strict=True),
        _row(t(N_("Birth date")), a.birth_date, b.birth_date, str, strict=True),
        _row(
            t(N_("Birth place (INSEE code)")), a.birth_place, b.birth_place, str.upper, strict=True
        ),
        _row(t(N_("Address")), a.address, b.address, address_form),
        _row(t(N_("Phone")), a.phone, b.phone, digits),
        _row(t(N_("INS")), a.ins, b.ins, normalize_ins),
        TraitRow(
            t(N_("Identity status")),
            _status_text(a, locale),
            _status_text(b, locale),
            "same" if same_status else "different",
        ),
        TraitRow(
            t(N_("Establishment")),
            a.establishment,
            b.establishment,
            "info",
            note=t(N_("Same establishment"))
            if a.establishment_code == b.establishment_code
            else None,
        ),
        TraitRow(
            t(N_("IPP")),
            a.local_id,
            b.local_id,
            "info",
            first_href=a.href,
            second_href=b.href,
        ),
        TraitRow(
            t(N_("Person")),
            person(a),
            person(b),
            "same" if same_person else "info",
            first_href=a.person_href,
            second_href=b.person_href,
            note=t(N_("Same person")) if same_person else t(N_("Two persons")),
        ),
    ]


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


def get_review(session: Session, review_id: uuid.UUID) -> Review | None:
    return session.get(Review, review_id)


def review_view(session: Session, review: Review, locale: str) -> ReviewView | None:
    rows = list(
        session.scalars(
            select(LocalIdentity).where(LocalIdentity.id.in_((review.first_id, review.second_id)))
        )
    )
    views = {v.id: v for v in identity_views(session, rows, locale)}
    first, second = views.get(review.first_id), views.get(review.second_id)
    if first is None or second is None:
        return None
    traits = trait_rows(first, second, locale)
    return ReviewView(
        id=review.id,
        status=review.status,
        status_label=gettext(locale, REVIEW_STATUS_LABELS.get(review.status, review.status)),
        open=review.status == ReviewStatus.open,
        proposed=date_time(review.created_at, locale),
        resolved=date_time(review.resolved_at, locale),
        resolved_by=author_label(review.resolved_by) if review.resolved_by else None,
        reason=review.reason,
        first=first,
        second=second,
        rows=traits,
        differences=sum(1 for row in traits if row.differs),
        same_person=first.person_id == second.person_id,
        explanation=score_explanation(review.explanation or {}, review.score, locale),
    )


def reviews_of_identity(
    session: Session, identity_id: uuid.UUID, locale: str
) -> list[dict[str, Any]]:
    rows = list(
        session.scalars(
            select(Review)
            .where(or_(Review.first_id == identity_id, Review.second_id == identity_id))
            .order_by(Review.created_at.desc())
            .limit(HISTORY_LIMIT)
        )
    )
    others = {r.id: r.second_id if r.first_id == identity_id else r.first_id for r in rows}
    labels = _labels_of(session, others.values())
    return [
        {
            "href": review_href(r.id),
            "other": labels.get(others[r.id], str(others[r.id])),
            "other_href": identity_href(others[r.id]),
            "status": gettext(locale, REVIEW_STATUS_LABELS.get(r.status, r.status)),
            "open": r.status == ReviewStatus.open,
            "score": number(r.score, locale),
            "proposed": date_time(r.created_at, locale),
        }
        for r in rows
    ]


# --- history: link periods and events -------------------------------------------------------


@dataclass(frozen=True)
class Detail:
    label: str
    value: str
    href: str | None = None


@dataclass(frozen=True)
class LinkRow:
    identity: str
    identity_href: str
    person_id: uuid.UUID
    method: str
    score: str | None
    author: str
    reason: str | None
    started: str | None
    ended: str | None
    ended_reason: str | None
    current: bool

    @property
    def person_href(self) -> str:
        return person_href(self.person_id)


@dataclass(frozen=True)
class EventRow:
    when: str | None
    kind: str
    identity: str | None
    identity_href: str | None
    author: str
    reason: str | None
    details: list[Detail] = field(default_factory=list)


def _labels_of(session: Session, identity_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, str]:
    """ "Establishment · IPP" of these identities (history rows name identities so)."""
    wanted = set(identity_ids)
    if not wanted:
        return {}
    rows = list(session.scalars(select(LocalIdentity).where(LocalIdentity.id.in_(wanted))))
    establishments = establishments_by_id(session, (r.establishment_id for r in rows))
    labels = {}
    for row in rows:
        establishment = establishments.get(row.establishment_id)
        labels[row.id] = f"{establishment.name if establishment else '?'} · {row.local_id}"
    return labels


def link_rows(session: Session, links: Sequence[Link], locale: str) -> list[LinkRow]:
    labels = _labels_of(session, (link.local_identity_id for link in links))
    return [
        LinkRow(
            identity=labels.get(link.local_identity_id, str(link.local_identity_id)),
            identity_href=identity_href(link.local_identity_id),
            person_id=link.person_id,
            method=gettext(locale, METHOD_LABELS.get(link.method, link.method)),
            score=number(link.score, locale) if link.score is not None else None,
            author=author_label(link.author),
            reason=link.reason,
            started=date_time(link.started_at, locale),
            ended=date_time(link.ended_at, locale),
            ended_reason=link.ended_reason,
            current=link.ended_at is None,
        )
        for link in links
    ]


def _uuid(value: object) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


def _event_details(
    event: IdentityEvent, locale: str, labels: Mapping[uuid.UUID, str]
) -> list[Detail]:
    def t(message: str) -> str:
        return gettext(locale, message)

    detail = event.detail or {}
    found: list[Detail] = []
    if event.kind == "persons_merged":
        absorbed = _uuid(detail.get("absorbed"))
        if absorbed:
            found.append(Detail(t(N_("Absorbed person")), str(absorbed), person_href(absorbed)))
        method = str(detail.get("method", ""))
        if method:
            found.append(Detail(t(N_("Method")), t(METHOD_LABELS.get(method, method))))
        identities = detail.get("identities")
        if isinstance(identities, list):
            found.append(Detail(t(N_("Identities moved")), str(len(identities))))
        if isinstance(detail.get("score"), int | float):
            found.append(Detail(t(N_("Score")), number(float(detail["score"]), locale)))
    elif event.kind == "not_duplicate":
        other = _uuid(detail.get("other"))
        if other:
            found.append(
                Detail(t(N_("Other identity")), labels.get(other, str(other)), identity_href(other))
            )
    elif event.kind == "unmerged":
        origin = _uuid(detail.get("from_person"))
        if origin:
            found.append(Detail(t(N_("Left the person")), str(origin), person_href(origin)))
        if event.person_id:
            found.append(
                Detail(t(N_("Now in")), str(event.person_id), person_href(event.person_id))
            )
    elif event.kind == "local_merged":
        into = _uuid(detail.get("into"))
        if into:
            found.append(Detail(t(N_("Into")), labels.get(into, str(into)), identity_href(into)))
    elif event.kind in ("status_changed", "ins_attached"):
        before = detail.get("before")
        if isinstance(before, dict) and before.get("status"):
            found.append(Detail(t(N_("Status before")), str(before["status"])))
        if isinstance(before, dict) and before.get("ins"):
            found.append(Detail(t(N_("INS before")), shown_ins(str(before["ins"]))))
    elif event.kind == "updated":
        changed = detail.get("changed")
        if isinstance(changed, list):
            found.append(Detail(t(N_("Fields changed")), ", ".join(str(c) for c in changed)))
    elif event.kind == "created" and detail.get("status"):
        found.append(Detail(t(N_("Identity status")), str(detail["status"])))
    return found


def event_rows(session: Session, events: Sequence[IdentityEvent], locale: str) -> list[EventRow]:
    referenced: set[uuid.UUID] = set()
    for event in events:
        if event.local_identity_id:
            referenced.add(event.local_identity_id)
        for key in ("other", "into"):
            other = _uuid((event.detail or {}).get(key))
            if other:
                referenced.add(other)
    labels = _labels_of(session, referenced)
    return [
        EventRow(
            when=date_time(event.occurred_at, locale),
            kind=gettext(locale, EVENT_LABELS.get(event.kind, event.kind)),
            identity=labels.get(event.local_identity_id) if event.local_identity_id else None,
            identity_href=identity_href(event.local_identity_id)
            if event.local_identity_id
            else None,
            author=author_label(event.author),
            reason=event.reason,
            details=_event_details(event, locale, labels),
        )
        for event in events
    ]


# --- a person -------------------------------------------------------------------------------


@dataclass(frozen=True)
class PersonView:
    id: uuid.UUID
    active: bool
    merged_into: uuid.UUID | None
    created: str | None
    updated: str | None
    identities: list[IdentityView]
    links: list[LinkRow]
    events: list[EventRow]

    @property
    def href(self) -> str:
        return person_href(self.id)

    @property
    def merged_into_href(self) -> str | None:
        return person_href(self.merged_into) if self.merged_into else None

    @property
    def can_unmerge(self) -> bool:
        return self.active and sum(1 for i in self.identities if i.active) > 1


def person_view(session: Session, person: Person, locale: str) -> PersonView:
    members = list(
        session.scalars(
            select(LocalIdentity)
            .where(LocalIdentity.person_id == person.id)
            .order_by(LocalIdentity.created_at, LocalIdentity.id)
        )
    )
    member_ids = [m.id for m in members]
    link_filter = Link.person_id == person.id
    event_filter = IdentityEvent.person_id == person.id
    if member_ids:
        link_filter = or_(link_filter, Link.local_identity_id.in_(member_ids))
        event_filter = or_(event_filter, IdentityEvent.local_identity_id.in_(member_ids))
    links = list(
        session.scalars(
            select(Link)
            .where(link_filter)
            .order_by(Link.started_at.desc(), Link.id)
            .limit(HISTORY_LIMIT)
        )
    )
    events = list(
        session.scalars(
            select(IdentityEvent)
            .where(event_filter)
            .order_by(IdentityEvent.occurred_at.desc(), IdentityEvent.id)
            .limit(HISTORY_LIMIT)
        )
    )
    return PersonView(
        id=person.id,
        active=person.status == PersonStatus.active,
        merged_into=person.merged_into_id,
        created=date_time(person.created_at, locale),
        updated=date_time(person.updated_at, locale),
        identities=identity_views(session, members, locale),
        links=link_rows(session, links, locale),
        events=event_rows(session, events, locale),
    )


# --- a local identity -----------------------------------------------------------------------


def identity_history(
    session: Session, identity_id: uuid.UUID, locale: str
) -> tuple[list[LinkRow], list[EventRow]]:
    links = list(
        session.scalars(
            select(Link)
            .where(Link.local_identity_id == identity_id)
            .order_by(Link.started_at.desc(), Link.id)
            .limit(HISTORY_LIMIT)
        )
    )
    events = list(
        session.scalars(
            select(IdentityEvent)
            .where(IdentityEvent.local_identity_id == identity_id)
            .order_by(IdentityEvent.occurred_at.desc(), IdentityEvent.id)
            .limit(HISTORY_LIMIT)
        )
    )
    return link_rows(session, links, locale), event_rows(session, events, locale)


# --- search ---------------------------------------------------------------------------------


_DATE_FORMS = (
    re.compile(r"^(?P<d>\d{1,2})[/.-](?P<m>\d{1,2})[/.-](?P<y>\d{4})$"),
    re.compile(r"^(?P<y>\d{4})-(?P<m>\d{1,2})-(?P<d>\d{1,2})$"),
)


def parse_birth_date(text: str) -> date | None:
    """17/04/1968, 17.04.1968 or 1968-04-17; None if it is not a date."""
    for form in _DATE_FORMS:
        match = form.match(text.strip())
        if match:
            try:
                return date(int(match["y"]), int(match["m"]), int(match["d"]))
            except ValueError:
                return None
    return None


@dataclass(frozen=True)
class SearchCriteria:
    name: str = ""
    given: str = ""
    born: str = ""
    ipp: str = ""
    ins: str = ""

    @property
    def is_empty(self) -> bool:
        return not any((self.name, self.given, self.born, self.ipp, self.ins))

    def used(self) -> list[str]:
        """Which criteria were given (for the audit trail: kinds, never values)."""
        return [key for key, value in vars(self).items() if value]


class InvalidCriteria(ValueError):
    """A criterion the search cannot use; the message is a msgid."""


def search_identities(
    session: Session, criteria: SearchCriteria, locale: str
) -> tuple[list[IdentityView], bool]:
    """Matching identities, in name order, at most SEARCH_LIMIT; True if there were more."""
    conditions = []
    if criteria.name:
        folded = fold(criteria.name)[:100]
        if not folded:
            raise InvalidCriteria(N_("The name must contain letters."))
        conditions.append(
            or_(
                LocalIdentity.family_folded.startswith(folded),
                LocalIdentity.used_folded.startswith(folded),
            )
        )
    if criteria.given:
        folded = fold(criteria.given)[:100]
        if not folded:
            raise InvalidCriteria(N_("The given name must contain letters."))
        conditions.append(
            or_(
                LocalIdentity.given_folded.startswith(folded),
                LocalIdentity.given_folded.contains(" " + folded),
            )
        )
    if criteria.born:
        born = parse_birth_date(criteria.born)
        if born is None:
            raise InvalidCriteria(N_("Enter the birth date as DD/MM/YYYY."))
        conditions.append(LocalIdentity.birth_date == born)
    if criteria.ipp:
        conditions.append(LocalIdentity.local_id == criteria.ipp.strip()[:64])
    if criteria.ins:
        conditions.append(LocalIdentity.ins == normalize_ins(criteria.ins)[:15])
    if not conditions:
        return [], False
    rows = list(
        session.scalars(
            select(LocalIdentity)
            .where(*conditions)
            .order_by(
                LocalIdentity.family_folded,
                LocalIdentity.given_folded,
                LocalIdentity.birth_date,
                LocalIdentity.id,
            )
            .limit(SEARCH_LIMIT + 1)
        )
    )
    return identity_views(session, rows[:SEARCH_LIMIT], locale), len(rows) > SEARCH_LIMIT


# --- the dashboard --------------------------------------------------------------------------


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    colour: str
    title: str


@dataclass(frozen=True)
class DayColumn:
    label: str
    date: date
    counts: dict[str, int]
    total: int
    bars: list[Bar]
    x: float
    show_label: bool


@dataclass(frozen=True)
class StatusBar:
    code: str
    label: str
    count: int
    y: float
    width: float
    colour: str
    count_x: float


@dataclass(frozen=True)
class Dashboard:
    open_reviews: int
    persons: int
    identities: int
    retired: int
    unmerges: int
    unmerges_recent: int
    links_recent: int
    days: list[DayColumn]
    methods: list[tuple[str, str, str]]
    method_totals: dict[str, int]
    day_chart: dict[str, Any]
    statuses: list[StatusBar]
    status_chart: dict[str, Any]


def _day_bounds(today: date, days: int) -> list[datetime]:
    """Midnights in the territory's time zone, from `days` days ago to tomorrow (UTC)."""
    first = today - timedelta(days=days - 1)
    return [datetime.combine(first + timedelta(n), time(), tzinfo=PARIS) for n in range(days + 1)]


def links_per_day(
    session: Session, *, today: date, days: int = CHART_DAYS
) -> dict[tuple[int, str], int]:
    """(day index, method) → links made, days counted in the territory's time zone."""
    bounds = _day_bounds(today, days)
    day = case(
        *[(Link.started_at < bounds[n + 1], n) for n in range(days)],
        else_=None,
    )
    inner = (
        select(day.label("day"), Link.method.label("method"))
        .where(
            Link.started_at >= bounds[0],
            Link.started_at < bounds[-1],
            Link.method.in_([method for method, _, _ in CHARTED_METHODS]),
        )
        .subquery()
    )
    rows = session.execute(
        select(inner.c.day, inner.c.method, func.count()).group_by(inner.c.day, inner.c.method)
    )
    return {(int(d), str(m)): int(c) for d, m, c in rows if d is not None}


DAY_CHART_WIDTH = 640
DAY_CHART_HEIGHT = 180
DAY_CHART_LEFT = 36
DAY_CHART_RIGHT = 24  # room for the last day's label
DAY_CHART_BOTTOM = 22
STATUS_LABEL = 230
STATUS_AREA = 330
STATUS_ROW = 28
STATUS_BAR = 18


def dashboard(session: Session, locale: str, *, now: datetime | None = None) -> Dashboard:
    def t(message: str) -> str:
        return gettext(locale, message)

    now = now or utcnow()
    today = now.astimezone(PARIS).date()
    counts = links_per_day(session, today=today)
    first_day = today - timedelta(days=CHART_DAYS - 1)
    totals = [sum(counts.get((n, m), 0) for m, _, _ in CHARTED_METHODS) for n in range(CHART_DAYS)]
    largest = max(totals, default=0) or 1
    plot_height = DAY_CHART_HEIGHT - DAY_CHART_BOTTOM - 8
    step = (DAY_CHART_WIDTH - DAY_CHART_LEFT - DAY_CHART_RIGHT) / CHART_DAYS
    columns = []
    for n in range(CHART_DAYS):
        day = first_day + timedelta(n)
        x = DAY_CHART_LEFT + n * step
        y = float(DAY_CHART_HEIGHT - DAY_CHART_BOTTOM)
        bars = []
        per_method = {}
        for method, label, colour in CHARTED_METHODS:
            count = counts.get((n, method), 0)
            per_method[method] = count
            if not count:
                continue
            height = max(count / largest * plot_height, 2.0)
            y -= height
            bars.append(
                Bar(
                    round(x + 2, 2),
                    round(y, 2),
                    round(step - 4, 2),
                    round(height, 2),
                    colour,
                    f"{day_label(day, locale)} · "
                    + t(N_("%(label)s: %(count)s")) % {"label": t(label), "count": count},
                )
            )
        columns.append(
            DayColumn(
                label=day_label(day, locale),
                date=day,
                counts=per_method,
                total=totals[n],
                bars=bars,
                x=round(x + step / 2, 2),
                show_label=n % 5 == 4 or n == 0,
            )
        )
    statuses = dict(
        session.execute(
            select(LocalIdentity.status, func.count())
            .where(LocalIdentity.active)
            .group_by(LocalIdentity.status)
        ).all()
    )
    status_largest = max(statuses.values(), default=0) or 1
    status_bars = []
    for position, code in enumerate(IdentityStatus):
        count = int(statuses.get(code.value, 0))
        width = count / status_largest * STATUS_AREA
        if count:
            width = max(width, 2.0)
        status_bars.append(
            StatusBar(
                code=code.value,
                label=f"{code.value} · {t(STATUS_SHORT[code])}",
                count=count,
                y=position * STATUS_ROW,
                width=round(width, 2),
                colour=STATUS_COLOURS[code],
                count_x=round(STATUS_LABEL + width + 6, 2),
            )
        )
    month_ago = now - timedelta(days=CHART_DAYS)
    unmerged = (
        select(func.count()).select_from(IdentityEvent).where(IdentityEvent.kind == "unmerged")
    )
    unmerges = {
        "all": session.scalar(unmerged) or 0,
        "recent": session.scalar(unmerged.where(IdentityEvent.occurred_at >= month_ago)) or 0,
    }
    identities = dict(
        session.execute(
            select(LocalIdentity.active, func.count()).group_by(LocalIdentity.active)
        ).all()
    )
    return Dashboard(
        open_reviews=int(
            session.scalar(
                select(func.count()).select_from(Review).where(Review.status == ReviewStatus.open)
            )
            or 0
        ),
        persons=int(
            session.scalar(
                select(func.count()).select_from(Person).where(Person.status == PersonStatus.active)
            )
            or 0
        ),
        identities=int(identities.get(True, 0)),
        retired=int(identities.get(False, 0)),
        unmerges=unmerges["all"],
        unmerges_recent=unmerges["recent"],
        links_recent=sum(totals),
        days=columns,
        methods=list(CHARTED_METHODS),
        method_totals={
            m: sum(counts.get((n, m), 0) for n in range(CHART_DAYS)) for m, _, _ in CHARTED_METHODS
        },
        day_chart={
            "width": DAY_CHART_WIDTH,
            "height": DAY_CHART_HEIGHT,
            "left": DAY_CHART_LEFT,
            "right": DAY_CHART_WIDTH - DAY_CHART_RIGHT,
            "axis_y": DAY_CHART_HEIGHT - DAY_CHART_BOTTOM,
            "top_y": DAY_CHART_HEIGHT - DAY_CHART_BOTTOM - plot_height,
            "largest": largest if any(totals) else 0,
        },
        statuses=status_bars,
        status_chart={
            "width": STATUS_LABEL + STATUS_AREA + 60,
            "height": len(status_bars) * STATUS_ROW,
            "label_width": STATUS_LABEL,
            "bar_height": STATUS_BAR,
        },
    )
