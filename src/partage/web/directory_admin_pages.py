"""Administration of the directory: the history of the RPPS and FINESS imports, and the
report of each, with the rows it rejected. For territory administrators
(`Action.directory_admin`); anyone else gets the same 404 as for an unknown page.

The chart is an SVG drawn here (no script, no inline style): one stacked bar per import.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from partage.access.decision import Action, NotFound, require
from partage.db import transaction
from partage.directory import service
from partage.directory.models import DirectoryImport
from partage.web.deps import get_platform
from partage.web.directory_views import date_time
from partage.web.i18n import N_
from partage.web.pages import current_path, render, request_locale
from partage.web.session import current_user, sign_in_redirect

router = APIRouter(prefix="/admin/annuaire", tags=["administration"])

HISTORY_LENGTH = 50
CHARTED_IMPORTS = 12
COUNTS = ("created", "updated", "unchanged", "closed", "rejected")
COUNT_LABELS = {
    "created": N_("Created"),
    "updated": N_("Updated"),
    "unchanged": N_("Unchanged"),
    "closed": N_("Closed"),
    "rejected": N_("Rejected"),
}
STATUS_LABELS = {
    "running": N_("Running"),
    "done": N_("Done"),
    "failed": N_("Failed"),
}
KIND_LABELS = {"rpps": "RPPS", "finess": "FINESS"}
# The importer writes "line 12: reason"; the line has a column of its own on the page.
_LINE_PREFIX = re.compile(r"^line \d+: ")

# Chart geometry, in SVG user units (the SVG scales to the width of the page).
CHART_WIDTH = 640
LABEL_WIDTH = 190
BAR_AREA = 360
ROW_HEIGHT = 28
BAR_HEIGHT = 18
SMALLEST_BAR = 2.0  # a count above zero stays visible next to counts a thousand times larger


@dataclass(frozen=True)
class ImportRow:
    id: uuid.UUID
    kind: str
    file_name: str
    started: str | None
    finished: str | None
    status: str
    status_label: str
    rows: int
    counts: dict[str, int]

    @property
    def href(self) -> str:
        return f"/admin/annuaire/imports/{self.id}"


@dataclass(frozen=True)
class Segment:
    name: str
    count: int
    x: float
    width: float


@dataclass(frozen=True)
class ChartRow:
    label: str
    y: float
    segments: list[Segment]
    total: int
    total_x: float


def import_row(run: DirectoryImport, locale: str) -> ImportRow:
    return ImportRow(
        id=run.id,
        kind=KIND_LABELS.get(run.kind, run.kind),
        file_name=run.file_name,
        started=date_time(run.started_at, locale),
        finished=date_time(run.finished_at, locale),
        status=run.status,
        status_label=STATUS_LABELS.get(run.status, run.status),
        rows=run.rows,
        counts={name: int(getattr(run, name) or 0) for name in COUNTS},
    )


def chart(imports: list[ImportRow]) -> dict[str, Any]:
    """Stacked bars, oldest import at the top, on one scale for all imports so the sizes of
    the files compare too."""
    shown = list(reversed(imports[:CHARTED_IMPORTS]))
    largest = max((sum(i.counts.values()) for i in shown), default=0) or 1
    rows = []
    for position, run in enumerate(shown):
        x = float(LABEL_WIDTH)
        segments = []
        for name in COUNTS:
            count = run.counts[name]
            if count == 0:
                continue
            width = max(count / largest * BAR_AREA, SMALLEST_BAR)
            segments.append(Segment(name, count, round(x, 2), round(width, 2)))
            x += width
        rows.append(
            ChartRow(
                label=f"{run.kind} · {run.started or ''}",
                y=position * ROW_HEIGHT,
                segments=segments,
                total=sum(run.counts.values()),
                total_x=round(x + 6, 2),
            )
        )
    return {
        "rows": rows,
        "width": CHART_WIDTH,
        "height": max(len(rows), 1) * ROW_HEIGHT,
        "bar_height": BAR_HEIGHT,
        "label_width": LABEL_WIDTH,
    }


def rejected_rows(run: DirectoryImport) -> list[dict[str, object]]:
    rows = []
    for item in run.rejections or []:
        reason = str(item.get("reason", ""))
        rows.append({"line": item.get("line") or "—", "reason": _LINE_PREFIX.sub("", reason)})
    return rows


@router.get("")
def import_history(request: Request) -> Response:
    user = current_user(request)
    if user is None:
        return sign_in_redirect(request, "/admin/annuaire")
    locale = request_locale(request)
    with transaction(get_platform(request).sessions) as session:
        require(session, user.principal, Action.directory_admin, entity_type="DirectoryImport")
        imports = [
            import_row(run, locale) for run in service.list_imports(session, limit=HISTORY_LENGTH)
        ]
    context = {
        "imports": imports,
        "chart": chart(imports),
        "counts": COUNTS,
        "count_labels": COUNT_LABELS,
    }
    return render(request, "admin/directory_imports.html", context, user=user)


@router.get("/imports/{import_id}")
def import_report(request: Request, import_id: str) -> Response:
    user = current_user(request)
    if user is None:
        return sign_in_redirect(request, current_path(request))
    try:
        run_id = uuid.UUID(import_id)
    except ValueError:
        raise NotFound() from None
    locale = request_locale(request)
    with transaction(get_platform(request).sessions) as session:
        require(
            session,
            user.principal,
            Action.directory_admin,
            entity_type="DirectoryImport",
            entity_id=str(run_id),
        )
        run = service.get_import(session, import_id=run_id)
        if run is None:
            raise NotFound()
        context = {
            "run": import_row(run, locale),
            "rejections": rejected_rows(run),
            "counts": COUNTS,
            "count_labels": COUNT_LABELS,
        }
    return render(request, "admin/directory_import.html", context, user=user)
