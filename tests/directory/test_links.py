"""Links between structures: a FINESS site to its legal entity, an RPPS structure to the
FINESS site it names — whichever extract is imported first."""

from __future__ import annotations

import io
from collections.abc import Sequence

import pytest
from sqlalchemy import select

from partage.db import transaction
from partage.directory import finess, rpps
from partage.directory.importer import ImportSummary, import_finess, import_rpps
from partage.directory.models import Organization
from partage.platform import Platform
from partage.security.principal import operator_principal


def _site(et: str, ej: str, name: str) -> str:
    fields = [""] * len(finess.COLUMNS)
    for column, value in {
        "nofinesset": et,
        "nofinessej": ej,
        "rslongue": name,
        "codepostal": "86000",
        "ligneacheminement": "86000 POITIERS",
        "departement": "86",
        "cog": "194",
        "categetab": "355",
    }.items():
        fields[finess.COLUMNS.index(column)] = value
    return "structureet;" + ";".join(fields)


def _import_finess(platform: Platform, sites: Sequence[str]) -> ImportSummary:
    data = b"finess;etalab;95;2026-10-01\n" + "\n".join(sites).encode("latin-1") + b"\n"
    return import_finess(
        platform.sessions,
        io.BytesIO(data),
        actor=operator_principal(),
        file_name="etalab.csv",
        chunk_rows=1,  # the same legal entity on several chunks
    )


def _activity(template: str, structure: str, finess_site: str) -> str:
    fields = template.split("|")
    fields[21], fields[23] = finess_site, structure
    return "|".join(fields)


def _import_rpps(platform: Platform, rows: Sequence[str]) -> ImportSummary:
    data = (rpps.HEADER + "\n" + "\n".join(rows) + "\n").encode("utf-8")
    return import_rpps(
        platform.sessions, io.BytesIO(data), actor=operator_principal(), file_name="rpps.txt"
    )


def _organizations(platform: Platform) -> dict[str, Organization]:
    with transaction(platform.read_sessions) as session:
        return {o.source_key: o for o in session.scalars(select(Organization))}


def test_a_site_belongs_to_its_legal_entity(fresh_platform: Platform) -> None:
    sites = [
        _site("860000019", "860000001", "Centre hospitalier A"),
        _site("860000027", "860000001", "Centre hospitalier A, site B"),
        _site("860000035", "860000043", "Clinique C"),
    ]
    first = _import_finess(fresh_platform, sites)
    assert (first.created, first.rejected) == (3, 0)
    found = _organizations(fresh_platform)
    entity = found["finess-ej:860000001"]
    assert entity.name == "Entité juridique FINESS 860000001" and entity.finess_ej == "860000001"
    assert entity.active and entity.parent_id is None
    assert found["finess-et:860000019"].parent_id == entity.id
    assert found["finess-et:860000027"].parent_id == entity.id
    assert found["finess-et:860000035"].parent_id == found["finess-ej:860000043"].id
    assert len(found) == 5  # one entity per number, whatever the chunks

    again = _import_finess(fresh_platform, sites)
    assert (again.created, again.updated, again.closed, again.unchanged) == (0, 0, 0, 3)

    # Site B now belongs to the clinic's entity; the clinic has closed.
    moved = [sites[0], _site("860000027", "860000043", "Centre hospitalier A, site B")]
    later = _import_finess(fresh_platform, moved)
    assert (later.updated, later.closed) == (1, 1)
    found = _organizations(fresh_platform)
    assert found["finess-et:860000027"].parent_id == found["finess-ej:860000043"].id
    assert not found["finess-et:860000035"].active
    # Closing sites never closes a legal entity: they are not in the site extract.
    assert found["finess-ej:860000043"].active and found["finess-ej:860000001"].active


@pytest.mark.parametrize("finess_first", [True, False], ids=["finess-first", "rpps-first"])
def test_an_rpps_structure_links_to_the_finess_site_it_names(
    fresh_platform: Platform, finess_first: bool
) -> None:
    templates = list(rpps.synthetic_rows(3))
    activities = [
        _activity(templates[0], "F860000019", "860000019"),  # a known site
        _activity(templates[1], "F860000050", "860000050"),  # a site the extract lacks
        _activity(templates[2], "C86000000001", ""),  # a practice without FINESS number
    ]
    sites = [_site("860000019", "860000001", "Centre hospitalier A")]
    if finess_first:
        _import_finess(fresh_platform, sites)
        _import_rpps(fresh_platform, activities)
    else:
        _import_rpps(fresh_platform, activities)
        assert _organizations(fresh_platform)["rpps-structure:F860000019"].site_id is None
        _import_finess(fresh_platform, sites)
    found = _organizations(fresh_platform)
    site = found["finess-et:860000019"]
    assert found["rpps-structure:F860000019"].site_id == site.id
    assert found["rpps-structure:F860000050"].site_id is None
    assert found["rpps-structure:C86000000001"].site_id is None
    assert site.site_id is None  # only RPPS structures point at sites

    # Importing either extract again changes nothing, links included.
    assert _import_rpps(fresh_platform, activities).updated == 0
    assert _import_finess(fresh_platform, sites).updated == 0
    assert _organizations(fresh_platform)["rpps-structure:F860000019"].site_id == site.id
