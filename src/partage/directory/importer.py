"""Importing the national extracts (RPPS, FINESS): streaming, idempotent, incremental.

The file is read in chunks of rows; each chunk is one transaction: existing rows are looked
up by their keys, only what changed is written (in bulk, see `bulk`), and every row the
file lists is stamped with the import's id — the first time the import lists it: a
professional or a structure repeated on later rows keeps what its first row said, and an
activity listed twice is rejected. Once the whole file has been read — and only then, so a
truncated file closes nothing — roles the extract no longer lists are closed (`valid_to`),
never deleted, professionals without an open role become inactive, and structures are
linked to the FINESS sites they name (`links`).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import IO, Any, TypeVar, cast

from sqlalchemy import CursorResult, Table, and_, exists, or_, update
from sqlalchemy.orm import Session, sessionmaker

from partage.audit.actions import record
from partage.bulk import Bulk, Row
from partage.db import transaction, utcnow
from partage.directory import finess
from partage.directory.finess import FinessRow
from partage.directory.links import SITE_PREFIX, legal_entity_ids, link_sites
from partage.directory.models import DirectoryImport, Organization, Practitioner, PractitionerRole
from partage.directory.rpps import RejectedRow, RppsRow, fold, read_rows
from partage.security.principal import Principal

CHUNK_ROWS = 5000
MAX_REPORTED_REJECTIONS = 1000

_PRACTITIONERS = cast(Table, Practitioner.__table__)
_ORGANIZATIONS = cast(Table, Organization.__table__)
_ROLES = cast(Table, PractitionerRole.__table__)

Progress = Callable[[int], None]
Item = TypeVar("Item")


@dataclass
class ImportSummary:
    import_id: uuid.UUID
    rows: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    closed: int = 0
    rejected: int = 0
    rejections: list[dict[str, Any]] = field(default_factory=list)

    def reject(self, line: int, reason: str) -> None:
        self.rejected += 1
        if len(self.rejections) < MAX_REPORTED_REJECTIONS:
            self.rejections.append({"line": line, "reason": reason})

    def add(self, written: Written, what: str) -> None:
        self.created += written.created
        self.updated += written.updated
        self.unchanged += written.unchanged
        for line in written.repeated:
            self.reject(line, f"the same {what} is listed twice")


@dataclass(frozen=True)
class Target:
    """What one kind of listed row writes: its table; the columns its content hash covers,
    natural key first; the ids linking it to other rows (written and compared, not hashed);
    whether it has a validity period, so that listing it again reopens it."""

    table: Table
    columns: tuple[str, ...]
    links: tuple[str, ...] = ()
    reopens: bool = False


@dataclass
class Written:
    """What writing a chunk's listed rows did; `ids` by key, in the driver's form."""

    ids: dict[str, Any] = field(default_factory=dict)
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    repeated: list[int] = field(default_factory=list)  # lines of keys already listed


def content_hash(content: Row) -> str:
    # The same digest as `rpps.digest(*map(str, content))`, without its per-part checks.
    text = "\x1f".join(map(str, content))
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def write_listed(
    bulk: Bulk,
    target: Target,
    listed: Iterable[tuple[int, str, Item]],
    build: Callable[[str, Item], tuple[Row, Row]],
    import_id: uuid.UUID,
) -> Written:
    """Write what an extract lists — (line, key, item), `build` giving the content and the
    links of an item — and stamp it with the import: insert the new, update (and reopen)
    the changed, only stamp the unchanged. A key the import already stamped is left as it
    is, its line returned in `repeated`."""
    table = target.table
    listed = list(listed)
    found = bulk.fetch(
        table,
        target.columns[0],
        {key for _, key, _ in listed},
        ("id", "content_hash", "last_import_id", "active", *target.links),
    )
    stamp = bulk.value(table, "last_import_id", import_id)
    now = bulk.value(table, "updated_at", utcnow())
    true = bulk.value(table, "active", True)
    valid_from = (now,) if "valid_from" in table.c else ()
    reopened = (true,) if target.reopens else ()
    written = Written()
    inserts: list[Row] = []
    updates: list[Row] = []
    unchanged: list[Any] = []
    for line, key, item in listed:
        row = found.get(key)
        if key in written.ids or (row is not None and row[3] == stamp):
            written.repeated.append(line)
            if row is not None:
                written.ids[key] = row[1]
            continue
        content, links = build(key, item)
        digest = content_hash(content)
        if row is None:
            new_id = bulk.new_id()
            inserts.append((new_id, *content, *links, digest, true, stamp, now, *valid_from))
            written.ids[key] = new_id
            written.created += 1
        elif row[2] != digest or row[5:] != links or (target.reopens and not row[4]):
            updates.append((*content[1:], *links, digest, stamp, now, *reopened, row[1]))
            written.ids[key] = row[1]
            written.updated += 1
        else:
            unchanged.append(row[1])
            written.ids[key] = row[1]
            written.unchanged += 1
    stamped = ("content_hash", "last_import_id", "updated_at")
    inserted = ("id", *target.columns, *target.links, "content_hash", "active", *stamped[1:])
    bulk.insert(table, inserted + (("valid_from",) if valid_from else ()), inserts)
    updated = (*target.columns[1:], *target.links, *stamped)
    if target.reopens:
        bulk.update(table, (*updated, "active"), updates, null=("valid_to",))
    else:
        bulk.update(table, updated, updates)
    bulk.set_column(table, "last_import_id", stamp, unchanged)
    return written


# --- RPPS ------------------------------------------------------------------------------------

_PRACTITIONER = Target(
    _PRACTITIONERS,
    (
        "national_id", "id_type", "local_id", "civility_code", "practice_civility_code",
        "family_name", "given_name", "family_name_folded", "given_name_folded",
    ),
)  # fmt: skip
_STRUCTURE = Target(
    _ORGANIZATIONS,
    (
        "source_key", "finess_et", "finess_ej", "siret", "name", "name_folded", "address_line",
        "postal_code", "city", "city_folded", "city_code", "phone", "email",
    ),
)  # fmt: skip
_ROLE = Target(
    _ROLES,
    (
        "role_key", "profession_code", "profession_label", "category_code", "specialty_type",
        "specialty_code", "specialty_label", "practice_mode_code", "practice_mode_label",
        "sector_code", "sector_label", "address_line", "postal_code", "city", "city_folded",
        "city_code", "phone", "email",
    ),
    links=("practitioner_id", "organization_id"),
    reopens=True,
)  # fmt: skip


def _practitioner_content(national_id: str, row: RppsRow) -> tuple[Row, Row]:
    v = row.values
    family, given = v[7] or "", v[8]
    return (
        national_id, v[0], v[1] or "", v[5], v[3], family, given, fold(family),
        fold(given) if given else None,
    ), ()  # fmt: skip


def _structure_content(source_key: str, row: RppsRow) -> tuple[Row, Row]:
    v = row.values
    name = v[25] or v[24] or "—"
    city = v[37]
    return (
        source_key, v[21], v[22], v[19], name, fold(name), row.address_line, v[35], city,
        fold(city) if city else None, v[36], v[40], v[43],
    ), ()  # fmt: skip


def _role_content(role_key: str, row: RppsRow) -> Row:
    v = row.values
    city = v[37]
    return (
        role_key, v[9], v[10], v[11], v[13], v[15], v[16], v[17], v[18], v[48], v[49],
        row.address_line, v[35], city, fold(city) if city else None, v[36], v[40], v[43],
    )  # fmt: skip


def _import_rpps_chunk(
    session: Session, rows: list[RppsRow], import_id: uuid.UUID, summary: ImportSummary
) -> None:
    bulk = Bulk(session)
    practitioners = write_listed(
        bulk,
        _PRACTITIONER,
        ((row.line, row.national_id, row) for row in rows),
        _practitioner_content,
        import_id,
    )
    structures = write_listed(
        bulk,
        _STRUCTURE,
        ((row.line, key, row) for row in rows if (key := row.structure_key)),
        _structure_content,
        import_id,
    )

    def role(role_key: str, row: RppsRow) -> tuple[Row, Row]:
        practitioner_id = practitioners.ids[row.national_id]
        structure_id = structures.ids.get(row.structure_key or "")
        return _role_content(role_key, row), (practitioner_id, structure_id)

    roles = write_listed(
        bulk, _ROLE, ((row.line, row.role_key, row) for row in rows), role, import_id
    )
    summary.add(roles, "activity")


def _close_unlisted(session: Session, table: Table, import_id: uuid.UUID, *conditions: Any) -> int:
    """Close (never delete) the open rows this import did not list."""
    now = utcnow()
    result = session.execute(
        update(table)
        .where(table.c.active.is_(True), *conditions)
        .where(or_(table.c.last_import_id.is_(None), table.c.last_import_id != import_id))
        .values(active=False, valid_to=now, updated_at=now)
    )
    return result.rowcount if isinstance(result, CursorResult) else 0


def _close_missing_roles(session: Session, import_id: uuid.UUID) -> int:
    closed = _close_unlisted(session, _ROLES, import_id)
    # A professional is active while one of their roles is; only changes are written.
    has_open_role = exists().where(
        and_(_ROLES.c.practitioner_id == _PRACTITIONERS.c.id, _ROLES.c.active.is_(True))
    )
    now = utcnow()
    for now_active, condition in ((False, ~has_open_role), (True, has_open_role)):
        session.execute(
            update(_PRACTITIONERS)
            .where(_PRACTITIONERS.c.active.is_(not now_active), condition)
            .values(active=now_active, updated_at=now)
        )
    link_sites(session)
    return closed


# --- FINESS ----------------------------------------------------------------------------------

_SITE = Target(_ORGANIZATIONS, finess.ORGANIZATION_COLUMNS, links=("parent_id",), reopens=True)


def _import_finess_chunk(
    session: Session, rows: list[FinessRow], import_id: uuid.UUID, summary: ImportSummary
) -> None:
    bulk = Bulk(session)
    entities = legal_entity_ids(bulk, {row.legal_entity for row in rows if row.legal_entity})

    def site(_key: str, row: FinessRow) -> tuple[Row, Row]:
        return row.organization_content(), (entities.get(row.legal_entity or ""),)

    sites = write_listed(
        bulk, _SITE, ((row.line, row.source_key, row) for row in rows), site, import_id
    )
    summary.add(sites, "establishment")


def _close_missing_sites(session: Session, import_id: uuid.UUID) -> int:
    # Sites only: legal entities are not in this extract, they are never closed here.
    closed = _close_unlisted(
        session, _ORGANIZATIONS, import_id, _ORGANIZATIONS.c.source_key.startswith(SITE_PREFIX)
    )
    link_sites(session)
    return closed


# --- the run ---------------------------------------------------------------------------------

ChunkImporter = Callable[[Session, list[Any], uuid.UUID, ImportSummary], None]


def _run_import(
    sessions: sessionmaker[Session],
    *,
    kind: str,
    rows: Iterable[Any],
    import_chunk: ChunkImporter,
    close_missing: Callable[[Session, uuid.UUID], int],
    actor: Principal,
    file_name: str,
    progress: Progress | None,
    chunk_rows: int,
) -> ImportSummary:
    """The run around an importer: its record, chunked commits, the closing once the whole
    file is read, the report and the audit event (also when it fails)."""
    with transaction(sessions) as session:
        run = DirectoryImport(kind=kind, file_name=file_name[:300])
        session.add(run)
        session.flush()
        import_id = run.id
    summary = ImportSummary(import_id)
    status = "failed"
    try:
        chunk: list[Any] = []
        for item in rows:
            summary.rows += 1
            if isinstance(item, RejectedRow):
                summary.reject(getattr(item, "line", 0), str(item))
                continue
            chunk.append(item)
            if len(chunk) >= chunk_rows:
                with transaction(sessions) as session:
                    import_chunk(session, chunk, import_id, summary)
                chunk = []
                if progress:
                    progress(summary.rows)
        with transaction(sessions) as session:
            if chunk:
                import_chunk(session, chunk, import_id, summary)
            summary.closed = close_missing(session, import_id)
        if progress:
            progress(summary.rows)
        status = "done"
    finally:
        with transaction(sessions) as session:
            run = session.get_one(DirectoryImport, import_id)
            run.status = status
            run.finished_at = utcnow()
            for name in ("rows", "created", "updated", "unchanged", "closed", "rejected"):
                setattr(run, name, getattr(summary, name))
            run.rejections = summary.rejections
            record(
                session,
                actor=actor.actor,
                action="directory.import",
                outcome="success" if status == "done" else "failure",
                entity_type="DirectoryImport",
                entity_id=str(import_id),
                detail={
                    "kind": kind,
                    "file": file_name[:200],
                    "rows": summary.rows,
                    "created": summary.created,
                    "updated": summary.updated,
                    "closed": summary.closed,
                    "rejected": summary.rejected,
                },
            )
    return summary


def import_rpps(
    sessions: sessionmaker[Session],
    stream: IO[bytes],
    *,
    actor: Principal,
    file_name: str,
    progress: Progress | None = None,
    chunk_rows: int = CHUNK_ROWS,
) -> ImportSummary:
    """Import a whole RPPS extract; each chunk commits on its own, the closing at the end."""
    return _run_import(
        sessions,
        kind="rpps",
        rows=read_rows(stream),
        import_chunk=_import_rpps_chunk,
        close_missing=_close_missing_roles,
        actor=actor,
        file_name=file_name,
        progress=progress,
        chunk_rows=chunk_rows,
    )


def import_finess(
    sessions: sessionmaker[Session],
    stream: IO[bytes],
    *,
    actor: Principal,
    file_name: str,
    progress: Progress | None = None,
    chunk_rows: int = CHUNK_ROWS,
) -> ImportSummary:
    """Import a whole FINESS establishment extract (sites), closing sites it no longer lists
    and linking each to its legal entity."""
    return _run_import(
        sessions,
        kind="finess",
        rows=finess.read_rows(stream),
        import_chunk=_import_finess_chunk,
        close_missing=_close_missing_sites,
        actor=actor,
        file_name=file_name,
        progress=progress,
        chunk_rows=chunk_rows,
    )
