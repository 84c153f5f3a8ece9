"""The console's dashboard: the queue, persons and identities counted; links made per day
and identities per status, drawn as charts.

Counts only, no one's identity. The charts are plain geometry for server-rendered SVG (no
script, no inline style: the strict CSP).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from babel.dates import format_date
from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from partage.db import utcnow
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
from partage.identity.traits import IdentityStatus
from partage.web.i18n import N_, gettext

CHART_DAYS = 30
# Days are counted as people there live them (the directory's dates use the same zone).
PARIS = ZoneInfo("Europe/Paris")

STATUS_SHORT: dict[str, str] = {
    IdentityStatus.provisional: N_("Provisional"),
    IdentityStatus.recovered: N_("Recovered"),
    IdentityStatus.validated: N_("Validated"),
    IdentityStatus.qualified: N_("Qualified"),
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


def day_label(value: date, locale: str) -> str:
    return format_date(value, "d MMM", locale=locale)


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
