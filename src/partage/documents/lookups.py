"""The directory facts a deposit reads, with a short memory.

Every deposit names its establishment's patient domain (by OID) and its author (by RPPS):
the same few hundred values all day. They are read with plain column queries and kept a few
minutes per database; only what was found is kept (an author added to the directory is
found at once, one removed stays known a few minutes: the directory itself changes by
daily imports)."""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any, cast
from weakref import WeakKeyDictionary

from sqlalchemy import Engine, Table, bindparam, select
from sqlalchemy.orm import Session

from partage.directory.models import Practitioner
from partage.security.models import Establishment

TTL_SECONDS = 300.0

_ESTABLISHMENTS = cast(Table, Establishment.__table__)
_PRACTITIONERS = cast(Table, Practitioner.__table__)
_DOMAIN = select(_ESTABLISHMENTS.c.id).where(_ESTABLISHMENTS.c.patient_id_oid == bindparam("oid"))
_PRACTITIONER_BY_NATIONAL_ID = select(
    _PRACTITIONERS.c.id, _PRACTITIONERS.c.given_name, _PRACTITIONERS.c.family_name
).where(_PRACTITIONERS.c.national_id == bindparam("national_id"))


@dataclass(frozen=True)
class KnownPractitioner:
    id: uuid.UUID
    label: str


# Per database (engine), then by (kind, key): found value and when it expires.
_caches: WeakKeyDictionary[Engine, dict[tuple[str, str], tuple[float, Any]]] = WeakKeyDictionary()
_lock = threading.Lock()


def _cache_of(session: Session) -> dict[tuple[str, str], tuple[float, Any]]:
    engine = session.get_bind().engine
    cache = _caches.get(engine)
    if cache is None:
        with _lock:
            cache = _caches.setdefault(engine, {})
    return cache


def _remembered(session: Session, kind: str, key: str) -> Any | None:
    entry = _cache_of(session).get((kind, key))
    if entry is None or entry[0] < time.monotonic():
        return None
    return entry[1]


def _remember(session: Session, kind: str, key: str, value: Any) -> None:
    cache = _cache_of(session)
    with _lock:
        if len(cache) > 100_000:
            cache.clear()
        cache[(kind, key)] = (time.monotonic() + TTL_SECONDS, value)


def domain_establishment(session: Session, oid: str) -> uuid.UUID | None:
    """The establishment whose patient identifier domain is `oid`."""
    found = _remembered(session, "domain", oid)
    if found is None:
        found = session.connection().execute(_DOMAIN, {"oid": oid}).scalar()
        if found is not None:
            _remember(session, "domain", oid, found)
    return found if isinstance(found, uuid.UUID) else None


def practitioner_by_national_id(session: Session, national_id: str) -> KnownPractitioner | None:
    found = _remembered(session, "rpps", national_id)
    if isinstance(found, KnownPractitioner):
        return found
    row = (
        session.connection()
        .execute(_PRACTITIONER_BY_NATIONAL_ID, {"national_id": national_id})
        .first()
    )
    if row is None:
        return None
    known = KnownPractitioner(row[0], " ".join(p for p in (row[1], row[2]) if p))
    _remember(session, "rpps", national_id, known)
    return known
