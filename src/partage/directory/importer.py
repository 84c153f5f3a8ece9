"""Importing the national extracts (RPPS, FINESS): streaming, idempotent, incremental.

The file is read in chunks of rows; each chunk is one transaction: existing rows are looked
up by their keys, only what changed is written (Core statements in bulk), and every role
the file lists is stamped with the import's id. Once the whole file has been read — and
only then, so a truncated file closes nothing — roles the extract no longer lists are
closed (`valid_to`), never deleted, and professionals without an open role become inactive.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import IO, Any, cast

from sqlalchemy import CursorResult, Table, and_, bindparam, exists, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from partage.audit.actions import record
from partage.db import transaction, utcnow
from partage.directory import finess
from partage.directory.finess import FinessRow
from partage.directory.models import DirectoryImport, Organization, Practitioner, PractitionerRole
from partage.directory.rpps import RejectedRow, RppsRow, digest, fold, read_rows
from partage.security.principal import Principal

CHUNK_ROWS = 5000
MAX_REPORTED_REJECTIONS = 1000

_PRACTITIONERS = cast(Table, Practitioner.__table__)
_ORGANIZATIONS = cast(Table, Organization.__table__)
_ROLES = cast(Table, PractitionerRole.__table__)

Progress = Callable[[int], None]


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


def _practitioner_values(row: RppsRow, import_id: uuid.UUID) -> dict[str, Any]:
    family, given = row[7] or "", row[8]
    values: dict[str, Any] = {
        "national_id": row.national_id,
        "id_type": row[0],
        "local_id": row[1] or "",
        "civility_code": row[5],
        "practice_civility_code": row[3],
        "family_name": family,
        "given_name": given,
        "family_name_folded": fold(family),
        "given_name_folded": fold(given) if given else None,
    }
    values["content_hash"] = digest(*(str(v) for v in values.values()))
    values["last_import_id"] = import_id
    return values


def _organization_values(row: RppsRow, import_id: uuid.UUID) -> dict[str, Any]:
    name = row[25] or row[24] or "—"
    values: dict[str, Any] = {
        "source_key": row.structure_key,
        "finess_et": row[21],
        "finess_ej": row[22],
        "siret": row[19],
        "name": name,
        "name_folded": fold(name),
        "address_line": row.address_line,
        "postal_code": row[35],
        "city": row[37],
        "city_folded": fold(row[37]) if row[37] else None,
        "city_code": row[36],
        "phone": row[40],
        "email": row[43],
    }
    values["content_hash"] = digest(*(str(v) for v in values.values()))
    values["last_import_id"] = import_id
    return values


def _role_values(row: RppsRow) -> dict[str, Any]:
    values: dict[str, Any] = {
        "role_key": row.role_key,
        "profession_code": row[9],
        "profession_label": row[10],
        "category_code": row[11],
        "specialty_type": row[13],
        "specialty_code": row[15],
        "specialty_label": row[16],
        "practice_mode_code": row[17],
        "practice_mode_label": row[18],
        "sector_code": row[48],
        "sector_label": row[49],
        "address_line": row.address_line,
        "postal_code": row[35],
        "city": row[37],
        "city_folded": fold(row[37]) if row[37] else None,
        "city_code": row[36],
        "phone": row[40],
        "email": row[43],
    }
    values["content_hash"] = digest(*(str(v) for v in values.values()))
    return values


def _existing(
    session: Session, table: Table, key: str, keys: set[str], *extra: str
) -> dict[str, Any]:
    if not keys:
        return {}
    columns = [table.c[key], table.c.id, table.c.content_hash, *(table.c[c] for c in extra)]
    found = session.execute(select(*columns).where(table.c[key].in_(keys)))
    return {row[0]: row for row in found}


def _upsert(
    session: Session,
    table: Table,
    key: str,
    existing: dict[str, Any],
    values_by_key: dict[str, dict[str, Any]],
) -> dict[str, uuid.UUID]:
    """Insert the new, update the changed (content hash); returns ids by key."""
    ids: dict[str, uuid.UUID] = {}
    inserts: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    now = utcnow()
    for value_key, values in values_by_key.items():
        found = existing.get(value_key)
        if found is None:
            new_id = uuid.uuid4()
            inserts.append(
                {
                    **values,
                    "id": new_id,
                    "active": True,
                    "updated_at": now,
                    **({"valid_from": now} if "valid_from" in table.c else {}),
                }
            )
            ids[value_key] = new_id
        else:
            ids[value_key] = found.id
            if found.content_hash != values["content_hash"]:
                updates.append({**{f"v_{k}": v for k, v in values.items()}, "b_id": found.id})
    if inserts:
        session.execute(table.insert(), inserts)
    if updates:
        names = [k for k in next(iter(values_by_key.values())) if k != key]
        statement = (
            update(table)
            .where(table.c.id == bindparam("b_id"))
            .values({**{name: bindparam(f"v_{name}") for name in names}, "updated_at": now})
        )
        session.execute(
            statement, [{k: v for k, v in u.items() if k != f"v_{key}"} for u in updates]
        )
    return ids


def _import_chunk(
    session: Session, rows: list[RppsRow], import_id: uuid.UUID, summary: ImportSummary
) -> None:
    # Once per professional and per structure, not once per row: they repeat.
    practitioners: dict[str, dict[str, Any]] = {}
    organizations: dict[str, dict[str, Any]] = {}
    for r in rows:
        if r.national_id not in practitioners:
            practitioners[r.national_id] = _practitioner_values(r, import_id)
        if r.structure_key and r.structure_key not in organizations:
            organizations[r.structure_key] = _organization_values(r, import_id)
    practitioner_ids = _upsert(
        session,
        _PRACTITIONERS,
        "national_id",
        _existing(session, _PRACTITIONERS, "national_id", set(practitioners)),
        practitioners,
    )
    organization_ids = _upsert(
        session,
        _ORGANIZATIONS,
        "source_key",
        _existing(session, _ORGANIZATIONS, "source_key", set(organizations)),
        organizations,
    )
    listed = [
        (
            row.line,
            row.role_key,
            {
                **_role_values(row),
                "practitioner_id": practitioner_ids[row.national_id],
                "organization_id": organization_ids.get(row.structure_key or ""),
            },
        )
        for row in rows
    ]
    _apply_listed(session, _ROLES, "role_key", listed, import_id, summary, "activity")


def _apply_listed(
    session: Session,
    table: Table,
    key: str,
    listed: list[tuple[int, str, dict[str, Any]]],
    import_id: uuid.UUID,
    summary: ImportSummary,
    what: str,
) -> None:
    """Write what an extract lists — (line, key, values) — and stamp it with the import:
    insert the new, update (and reopen) the changed or closed, stamp the unchanged; a key
    listed twice in one import is rejected the second time."""
    existing = _existing(session, table, key, {k for _, k, _ in listed}, "last_import_id", "active")
    now = utcnow()
    seen: set[str] = set()
    inserts: list[dict[str, Any]] = []
    changed: list[dict[str, Any]] = []
    stamped: list[uuid.UUID] = []
    for line, listed_key, values in listed:
        found = existing.get(listed_key)
        if listed_key in seen or (found is not None and found.last_import_id == import_id):
            summary.reject(line, f"the same {what} is listed twice")
            continue
        seen.add(listed_key)
        if found is None:
            inserts.append(
                {
                    **values,
                    "id": uuid.uuid4(),
                    "active": True,
                    "valid_from": now,
                    "updated_at": now,
                    "last_import_id": import_id,
                }
            )
            summary.created += 1
        elif found.content_hash != values["content_hash"] or not found.active:
            changed.append(
                {**{f"v_{k}": v for k, v in values.items() if k != key}, "b_id": found.id}
            )
            summary.updated += 1
        else:
            stamped.append(found.id)
            summary.unchanged += 1
    if inserts:
        session.execute(table.insert(), inserts)
    if changed:
        names = [k[2:] for k in changed[0] if k.startswith("v_")]
        session.execute(
            update(table)
            .where(table.c.id == bindparam("b_id"))
            .values(
                {
                    **{n: bindparam(f"v_{n}") for n in names},
                    "active": True,
                    "valid_to": None,
                    "updated_at": now,
                    "last_import_id": import_id,
                }
            ),
            changed,
        )
    if stamped:
        session.execute(
            update(table).where(table.c.id.in_(stamped)).values(last_import_id=import_id)
        )


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


def _close_missing(session: Session, import_id: uuid.UUID) -> int:
    closed = _close_unlisted(session, _ROLES, import_id)
    has_open_role = exists().where(
        and_(_ROLES.c.practitioner_id == _PRACTITIONERS.c.id, _ROLES.c.active.is_(True))
    )
    session.execute(update(_PRACTITIONERS).values(active=has_open_role))
    return closed


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
        import_chunk=_import_chunk,
        close_missing=_close_missing,
        actor=actor,
        file_name=file_name,
        progress=progress,
        chunk_rows=chunk_rows,
    )


def _import_finess_chunk(
    session: Session, rows: list[FinessRow], import_id: uuid.UUID, summary: ImportSummary
) -> None:
    listed = [(row.line, row.source_key, row.organization_values()) for row in rows]
    _apply_listed(
        session, _ORGANIZATIONS, "source_key", listed, import_id, summary, "establishment"
    )


def _close_missing_establishments(session: Session, import_id: uuid.UUID) -> int:
    return _close_unlisted(
        session, _ORGANIZATIONS, import_id, _ORGANIZATIONS.c.source_key.like("finess-et:%")
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
    """Import a whole FINESS establishment extract (sites), closing sites it no longer lists."""
    return _run_import(
        sessions,
        kind="finess",
        rows=finess.read_rows(stream),
        import_chunk=_import_finess_chunk,
        close_missing=_close_missing_establishments,
        actor=actor,
        file_name=file_name,
        progress=progress,
        chunk_rows=chunk_rows,
    )
