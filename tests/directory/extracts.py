"""Hand-written rows in the official extract layouts, and their import, for tests that need
a directory with named professionals (beside the generators' synthetic ones)."""

from __future__ import annotations

import io

from partage.directory import finess, rpps
from partage.directory.importer import ImportSummary, import_finess, import_rpps
from partage.platform import Platform
from partage.security.principal import operator_principal

FINESS_FIRST_LINE = b"finess;etalab;95;2026-10-01\n"


def rpps_row(
    rpps_number: str,
    family: str,
    given: str,
    *,
    profession: tuple[str, str] = ("10", "Médecin"),
    specialty: tuple[str, str] = ("SM54", "Médecine générale"),
    structure: str = "C99000000001",
    finess_site: str = "",
    city: tuple[str, str, str] = ("86000", "86194", "Poitiers"),
    phone: str = "0549000000",
) -> str:
    """One activity in the official 52-column layout."""
    fields = [""] * len(rpps.COLUMNS)
    fields[0:3] = ["8", rpps_number, "8" + rpps_number]
    fields[3:5] = ["DR", "Docteur"] if profession[0] == "10" else ["", ""]
    fields[7:11] = [family, given, *profession]
    fields[13:17] = ["S", "Spécialité ordinale", *specialty] if specialty[0] else ["", "", "", ""]
    fields[17:19] = ["L", "Libéral"]
    fields[21] = finess_site
    fields[23] = structure
    fields[24] = f"CABINET {family}"
    fields[28:33] = ["12", "", "R", "Rue", "DES CARMES"]
    fields[35:38] = list(city)
    fields[40] = phone
    return "|".join(fields) + "|"


def site_number(finess_row: str) -> str:
    """The FINESS ET number of a row of the establishment extract."""
    return finess_row.split(";")[1 + finess.COLUMNS.index("nofinesset")]


def import_finess_rows(platform: Platform, rows: list[str]) -> ImportSummary:
    data = FINESS_FIRST_LINE + "\n".join(rows).encode("latin-1") + b"\n"
    return import_finess(
        platform.sessions, io.BytesIO(data), actor=operator_principal(), file_name="finess.csv"
    )


def import_rpps_rows(platform: Platform, rows: list[str], file_name: str) -> ImportSummary:
    data = (rpps.HEADER + "\n" + "\n".join(rows) + "\n").encode()
    return import_rpps(
        platform.sessions, io.BytesIO(data), actor=operator_principal(), file_name=file_name
    )
