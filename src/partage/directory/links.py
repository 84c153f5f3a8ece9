"""Links between structures that the extracts only name by number.

- A FINESS site (ET) belongs to a legal entity (EJ): `parent_id`. The site import creates an
  entity it does not know yet, under a neutral name, so that the link exists at once.
- An RPPS structure that names a FINESS site is that site: `site_id`. Set by one statement
  at the end of either import, so it does not matter which extract comes first.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, cast

from sqlalchemy import CursorResult, Table, literal, or_, select, update
from sqlalchemy.orm import Session

from partage.bulk import Bulk
from partage.db import utcnow
from partage.directory.models import Organization
from partage.directory.rpps import digest, fold

SITE_PREFIX = "finess-et:"
LEGAL_ENTITY_PREFIX = "finess-ej:"
RPPS_STRUCTURE_PREFIX = "rpps-structure:"

_ORGANIZATIONS = cast(Table, Organization.__table__)
_PLACEHOLDER_COLUMNS = (
    "id", "source_key", "finess_ej", "name", "name_folded", "content_hash", "active",
    "updated_at", "valid_from",
)  # fmt: skip


def legal_entity_name(number: str) -> str:
    return f"Entité juridique FINESS {number}"


def legal_entity_ids(bulk: Bulk, numbers: Collection[str]) -> dict[str, Any]:
    """The ids of the legal entities of these FINESS numbers, by number.

    An entity the directory does not have yet is created with a neutral name and no import
    stamp: its content hash matches no real one, so an import of legal entities replaces it,
    and closing sites (`finess-et:` keys only) never closes it."""
    keys = {f"{LEGAL_ENTITY_PREFIX}{number}": number for number in numbers}
    found = bulk.fetch(_ORGANIZATIONS, "source_key", keys.keys(), ("id",))
    ids = {keys[key]: row[1] for key, row in found.items()}
    now = bulk.value(_ORGANIZATIONS, "updated_at", utcnow())
    true = bulk.value(_ORGANIZATIONS, "active", True)
    created = []
    for key, number in keys.items():
        if number in ids:
            continue
        new_id = bulk.new_id()
        name = legal_entity_name(number)
        placeholder_hash = digest("placeholder", key)
        created.append((new_id, key, number, name, fold(name), placeholder_hash, true, now, now))
        ids[number] = new_id
    bulk.insert(_ORGANIZATIONS, _PLACEHOLDER_COLUMNS, created)
    return ids


def link_sites(session: Session) -> int:
    """Point every RPPS structure at the FINESS site it names, when the directory has it
    (and nowhere when it no longer names one); returns how many links changed."""
    structures = _ORGANIZATIONS
    sites = _ORGANIZATIONS.alias("site")
    site_named = (
        select(sites.c.id)
        .where(sites.c.source_key == literal(SITE_PREFIX).concat(structures.c.finess_et))
        .scalar_subquery()
    )
    result = session.execute(
        update(structures)
        .where(
            structures.c.source_key.startswith(RPPS_STRUCTURE_PREFIX),
            or_(structures.c.finess_et.is_not(None), structures.c.site_id.is_not(None)),
            structures.c.site_id.is_distinct_from(site_named),
        )
        .values(site_id=site_named, updated_at=utcnow())
    )
    return result.rowcount if isinstance(result, CursorResult) else 0
