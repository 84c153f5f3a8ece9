"""The FINESS importer on Latin-1 files in the Etalab layout."""

from __future__ import annotations

import io

from sqlalchemy import select

from partage.db import transaction
from partage.directory.finess import COLUMNS, synthetic_rows, write_synthetic_extract
from partage.directory.importer import import_finess
from partage.directory.models import Organization
from partage.platform import Platform
from partage.security.principal import operator_principal


def _import(platform: Platform, data: bytes):  # type: ignore[no-untyped-def]
    return import_finess(
        platform.sessions,
        io.BytesIO(data),
        actor=operator_principal(),
        file_name="etalab-cs1100507-stock-test.csv",
        chunk_rows=25,
    )


def _file(rows: list[str], *extra: bytes) -> bytes:
    body = b"finess;etalab;95;2026-10-01\n" + b"\n".join(r.encode("latin-1") for r in rows)
    return body + b"\n" + b"".join(extra)


def test_import_reimport_update_and_close(fresh_platform: Platform) -> None:
    rows = list(synthetic_rows(60))
    first = _import(fresh_platform, _file(rows))
    assert (first.rows, first.created, first.rejected) == (60, 60, 0)
    again = _import(fresh_platform, _file(rows))
    assert (again.created, again.updated, again.unchanged, again.closed) == (0, 0, 60, 0)

    renamed = rows[1].split(";")
    renamed[1 + COLUMNS.index("rslongue")] = "Centre hospitalier Camille-Guérin"
    later = [rows[0], ";".join(renamed), *rows[3:]]  # rows[2]'s site has closed
    summary = _import(fresh_platform, _file(later))
    assert (summary.updated, summary.closed) == (1, 1)
    with transaction(fresh_platform.read_sessions) as session:
        site = session.scalar(
            select(Organization).where(Organization.name_folded.like("CENTRE HOSPITALIER CAMILLE%"))
        )
        assert site is not None and site.name == "Centre hospitalier Camille-Guérin"
        assert site.city is not None and site.postal_code is not None and site.finess_ej
        closed = list(session.scalars(select(Organization).where(Organization.active.is_(False))))
        assert len(closed) == 1 and closed[0].valid_to is not None


def test_bad_rows_and_other_kinds_of_rows(fresh_platform: Platform) -> None:
    rows = list(synthetic_rows(5))
    geoloc = b"geolocalisation;860000001;470000.0;6620000.0;1,ATLASANTE;2026-01-01\n"
    short = b"structureet;860000009;860000009;TROP COURT\n"
    bad_finess = ("structureet;86ABC;" + ";".join([""] * (len(COLUMNS) - 1))).encode() + b"\n"
    summary = _import(
        fresh_platform, _file(rows, geoloc, short, bad_finess, rows[0].encode() + b"\n")
    )
    reasons = " | ".join(r["reason"] for r in summary.rejections)
    assert summary.created == 5
    assert "fields instead of 42" in reasons
    assert "malformed FINESS number" in reasons
    assert "listed twice" in reasons
    assert summary.rejected == 3


def test_synthetic_extract_is_latin1_in_the_etalab_layout() -> None:
    buffer = io.BytesIO()
    count = write_synthetic_extract(buffer, 12)
    lines = buffer.getvalue().decode("latin-1").splitlines()
    assert lines[0].startswith("finess;etalab;")
    assert len(lines) == count + 1
    assert all(line.startswith("structureet;") and line.count(";") == 42 for line in lines[1:])
