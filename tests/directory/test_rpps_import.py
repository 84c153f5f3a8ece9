"""The RPPS importer on real files in the official format: streaming, idempotent,
incremental, and reporting bad rows instead of stopping at them."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from sqlalchemy import func, select

from partage.db import transaction
from partage.directory.importer import import_rpps
from partage.directory.models import DirectoryImport, Organization, Practitioner, PractitionerRole
from partage.directory.rpps import HEADER, RejectedRow, synthetic_rows, write_synthetic_extract
from partage.platform import Platform
from partage.security.principal import operator_principal


def _extract(tmp_path: Path, rows: list[str], name: str = "extract.txt") -> Path:
    path = tmp_path / name
    path.write_text(HEADER + "\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return path


def _import(platform: Platform, path: Path, *, chunk_rows: int = 100):  # type: ignore[no-untyped-def]
    with path.open("rb") as stream:
        return import_rpps(
            platform.sessions,
            stream,
            actor=operator_principal(),
            file_name=path.name,
            chunk_rows=chunk_rows,
        )


def _count(platform: Platform, *where: object, model: type = PractitionerRole) -> int:
    with transaction(platform.read_sessions) as session:
        return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def test_import_then_reimport_changes_nothing(fresh_platform: Platform, tmp_path: Path) -> None:
    rows = list(synthetic_rows(300))
    path = _extract(tmp_path, rows)
    first = _import(fresh_platform, path)
    assert first.rows == len(rows)
    assert first.created == len(rows) and first.rejected == 0 and first.closed == 0
    assert _count(fresh_platform, model=Practitioner) == 300
    assert _count(fresh_platform, PractitionerRole.active.is_(True)) == len(rows)

    again = _import(fresh_platform, path)
    assert (again.created, again.updated, again.closed, again.rejected) == (0, 0, 0, 0)
    assert again.unchanged == len(rows)
    with transaction(fresh_platform.read_sessions) as session:
        runs = list(session.scalars(select(DirectoryImport).order_by(DirectoryImport.started_at)))
    assert [r.status for r in runs] == ["done", "done"]


def test_a_later_extract_updates_and_closes_without_deleting(
    fresh_platform: Platform, tmp_path: Path
) -> None:
    rows = list(synthetic_rows(50, second_site_share=1.0))  # everyone on two sites
    _import(fresh_platform, _extract(tmp_path, rows, "v1.txt"))
    dropped = rows[0]  # one professional leaves one of their two sites
    moved = rows[2].split("|")
    moved[40] = "0549999999"  # another changes phone number
    later = [rows[1], "|".join(moved), *rows[3:]]
    summary = _import(fresh_platform, _extract(tmp_path, later, "v2.txt"))
    assert summary.closed == 1
    assert summary.updated == 1
    assert summary.unchanged == len(later) - 1
    assert _count(fresh_platform) == len(rows)  # history kept
    closed = _count(
        fresh_platform, PractitionerRole.active.is_(False), PractitionerRole.valid_to.is_not(None)
    )
    assert closed == 1
    # Still active: the professional keeps their other site.
    national_id = dropped.split("|")[2]
    with transaction(fresh_platform.read_sessions) as session:
        practitioner = session.scalar(
            select(Practitioner).where(Practitioner.national_id == national_id)
        )
        assert practitioner is not None and practitioner.active
    # The role comes back in a third extract: reopened, not duplicated.
    back = _import(fresh_platform, _extract(tmp_path, rows, "v3.txt"))
    assert back.updated >= 1 and back.created == 0
    assert _count(fresh_platform, PractitionerRole.active.is_(True)) == len(rows)


def test_bad_rows_are_reported_with_their_line_and_reason(
    fresh_platform: Platform, tmp_path: Path
) -> None:
    good = list(synthetic_rows(20))
    short = "|".join(good[0].split("|")[:30]) + "|"
    bad_id = good[1].replace(good[1].split("|")[2], "8123", 1)
    latin1 = good[2].encode("utf-8").decode("utf-8").replace("é", "é")
    rows = [*good, short, bad_id, good[3]]  # good[3] again: a duplicate activity
    path = _extract(tmp_path, rows)
    with path.open("ab") as stream:
        stream.write("8|1|2|x|Médecin".encode("latin-1") + b"|" * 48 + b"\n")
        stream.write(latin1.encode("latin-1", errors="replace") + b"\n")
    summary = _import(fresh_platform, path, chunk_rows=7)
    reasons = {r["line"]: r["reason"] for r in summary.rejections}
    assert summary.created == len(good)
    assert "columns instead of 52" in reasons[len(good) + 2]
    assert "malformed RPPS national id" in reasons[len(good) + 3]
    assert "listed twice" in reasons[len(good) + 4]
    assert "not UTF-8" in reasons[len(good) + 5]
    assert summary.rejected == len(summary.rejections) >= 4


def test_a_file_that_is_not_an_rpps_extract_is_refused(fresh_platform: Platform) -> None:
    with pytest.raises(RejectedRow, match="not the header"):
        import_rpps(
            fresh_platform.sessions,
            io.BytesIO(b"a;b;c\n1;2;3\n"),
            actor=operator_principal(),
            file_name="finess.csv",
        )
    with transaction(fresh_platform.read_sessions) as session:
        run = session.scalar(select(DirectoryImport))
        assert run is not None and run.status == "failed"


def test_synthetic_extracts_are_in_the_official_format(tmp_path: Path) -> None:
    buffer = io.StringIO()
    count = write_synthetic_extract(buffer, 40)
    lines = buffer.getvalue().splitlines()
    assert lines[0] == HEADER and len(lines) == count + 1
    assert all(line.endswith("|") and line.count("|") == 52 for line in lines)


def test_a_structure_keeps_what_its_first_row_says(
    fresh_platform: Platform, tmp_path: Path
) -> None:
    rows = []
    for n, row in enumerate(synthetic_rows(4)):
        fields = row.split("|")
        fields[23], fields[24] = "C86000000001", f"CABINET {n}"  # one structure, named 4 ways
        rows.append("|".join(fields))
    path = _extract(tmp_path, rows)
    _import(fresh_platform, path, chunk_rows=1)

    def structure() -> Organization:
        with transaction(fresh_platform.read_sessions) as session:
            return session.scalars(select(Organization)).one()

    first = structure()
    assert first.name == "CABINET 0"
    again = _import(fresh_platform, path, chunk_rows=1)
    assert (again.created, again.updated, again.closed) == (0, 0, 0)
    assert structure().updated_at == first.updated_at
