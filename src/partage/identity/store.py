"""The database side of matching: stored identities as traits, candidates by key, the model.

Candidates of an incoming identity are the active identities sharing one of its blocking
key values (indexed columns), and then every active identity of their persons — a record
joins a person only after being compared with all of that person's records.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, cast

from sqlalchemy import Select, Table, and_, bindparam, func, or_, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from partage.identity.blocking import KEY_COLUMNS, QUERY_COLUMNS, query_keys, stored_keys
from partage.identity.features import Features
from partage.identity.model import CALIBRATION_RECORDS, MatchModel, TermFrequencies
from partage.identity.models import LocalIdentity, MatchModelRecord, NameFrequency
from partage.identity.normalize import fold
from partage.identity.traits import IdentityStatus, IdentityTraits, Sex

# At most this many identities found by keys (a guard against a pathological block).
MAX_CANDIDATES = 500
ATTRIBUTES = ("doubtful", "fictitious", "homonym", "usurped")


def traits_of(row: LocalIdentity) -> IdentityTraits:
    return IdentityTraits(
        birth_family_name=row.birth_family_name,
        given_names=tuple(row.given_names.split()),
        sex=Sex(row.sex),
        birth_date=row.birth_date,
        used_family_name=row.used_family_name,
        birth_place_code=row.birth_place_code,
        address=row.address,
        postal_code=row.postal_code,
        city=row.city,
        phone=row.phone,
        ins=row.ins,
    )


def features_of(row: LocalIdentity) -> Features:
    return Features(traits_of(row), IdentityStatus(row.status))


@dataclass(frozen=True, slots=True)
class Stored:
    """A stored identity as matching reads it: no ORM object (they cost more to load than
    to compare, and a candidate is only read)."""

    id: uuid.UUID
    person_id: uuid.UUID
    features: Features


# The columns an identity's matching form is built from, in the order `features_from_columns`
# takes them (the bulk importer reads the same ones).
TRAIT_COLUMNS = (
    "birth_family_name", "given_names", "sex", "birth_date", "used_family_name",
    "birth_place_code", "address", "postal_code", "city", "phone", "ins", "status",
)  # fmt: skip
# `Stored` is read from the identity, its person and those columns. Table columns, not the
# ORM's attributes: a plain statement skips the ORM's compilation and autoflush (callers
# flush first: see `_flushed`).
_IDENTITIES = cast(Table, LocalIdentity.__table__)
_MATCH_COLUMNS = tuple(_IDENTITIES.c[name] for name in ("id", "person_id", *TRAIT_COLUMNS))


def _flushed(session: Session) -> Session:
    """The session, its pending ORM changes written (what autoflush would have done)."""
    if session.autoflush:
        session.flush()
    return session


def _stored(rows: Iterable[Any]) -> list[Stored]:
    return [Stored(row[0], row[1], features_from_columns(row[2:])) for row in rows]


def features_from_columns(row: Sequence[Any]) -> Features:
    """`features_of` for a plain row of TRAIT_COLUMNS (SQLite's driver gives dates as text)."""
    (family, given, sex, birth_date, used, place, address, postal, city, phone, ins, status) = row
    if isinstance(birth_date, str):
        birth_date = date.fromisoformat(birth_date)
    traits = IdentityTraits(
        birth_family_name=family,
        given_names=tuple(given.split()),
        sex=Sex(sex),
        birth_date=birth_date,
        used_family_name=used,
        birth_place_code=place,
        address=address,
        postal_code=postal,
        city=city,
        phone=phone,
        ins=ins,
    )
    return Features(traits, IdentityStatus(status))


def trait_columns(traits: IdentityTraits) -> dict[str, object]:
    """The columns of a local identity that hold its traits."""
    return {
        "birth_family_name": traits.birth_family_name,
        "given_names": " ".join(traits.given_names),
        "sex": traits.sex.value,
        "birth_date": traits.birth_date,
        "birth_place_code": traits.birth_place_code,
        "used_family_name": traits.used_family_name,
        "address": traits.address,
        "postal_code": traits.postal_code,
        "city": traits.city,
        "phone": traits.phone,
        "ins": traits.ins,
        "family_folded": fold(traits.birth_family_name)[:100],
        "used_folded": fold(traits.used_family_name)[:100],
        "given_folded": " ".join(fold(g) for g in traits.given_names)[:200],
    }


def key_columns(features: Features) -> dict[str, str | None]:
    return dict(zip(KEY_COLUMNS, stored_keys(features), strict=True))


def candidates(
    session: Session, features: Features, *, exclude: uuid.UUID | None = None
) -> list[LocalIdentity]:
    """The active identities of every person one of whose identities shares a key value."""
    statement, params = _candidates_query(features, exclude, stored=False)
    if statement is None:
        return []
    return list(session.scalars(statement, params))


def _candidates_query(
    features: Features, exclude: uuid.UUID | None, *, stored: bool
) -> tuple[Select[Any] | None, dict[str, object]]:
    shape: list[tuple[str, int]] = []
    params: dict[str, object] = {}
    for key, values in query_keys(features).items():
        if values:
            ordered = sorted(values)
            for column in QUERY_COLUMNS[key]:
                shape.append((column, len(ordered)))
                for i, value in enumerate(ordered):
                    params[f"{column}_{i}"] = value
    if not shape:
        return None, params
    if exclude is not None:
        params["exclude"] = exclude
    return _candidates_statement(tuple(shape), exclude is not None, stored), params


def candidate_identities(
    session: Session, features: Features, *, exclude: uuid.UUID | None = None
) -> list[Stored]:
    """`candidates`, read as `Stored` (the incremental path)."""
    statement, params = _candidates_query(features, exclude, stored=True)
    if statement is None:
        return []
    return _stored(_flushed(session).execute(statement, params))


_MEMBERS = select(*_MATCH_COLUMNS).where(
    _IDENTITIES.c.person_id == bindparam("person"),
    _IDENTITIES.c.active,
    _IDENTITIES.c.id != bindparam("exclude"),
)


def other_members(session: Session, person_id: uuid.UUID, exclude: uuid.UUID) -> list[Stored]:
    """The person's other active identities."""
    params = {"person": person_id, "exclude": exclude}
    return _stored(_flushed(session).execute(_MEMBERS, params))


# Each shape (key columns, and how many values each looks up), built once: an identity is
# received in a few hundred microseconds less than when its statement is put together anew,
# and one parameter per value spares the per-call rewriting of "expanding" IN parameters.
# There are few shapes: a value count comes from names × dates, a handful at most.
_Shape = tuple[tuple[str, int], ...]
_CANDIDATE_STATEMENTS: dict[tuple[_Shape, bool, bool], Select[Any]] = {}


def _candidates_statement(shape: _Shape, exclude: bool, stored: bool) -> Select[Any]:
    cached = _CANDIDATE_STATEMENTS.get((shape, exclude, stored))
    if cached is not None:
        return cached
    table = _IDENTITIES
    conditions = [
        table.c[column].in_([bindparam(f"{column}_{i}") for i in range(count)])
        for column, count in shape
    ]
    found = (
        select(table.c.person_id)
        .where(or_(*conditions), table.c.active)
        .limit(MAX_CANDIDATES)
        .scalar_subquery()
    )
    chosen: Select[Any] = (
        cast(Select[Any], select(*_MATCH_COLUMNS)) if stored else select(LocalIdentity)
    )
    statement = chosen.where(table.c.person_id.in_(found), table.c.active)
    if exclude:
        statement = statement.where(table.c.id != bindparam("exclude"))
    _CANDIDATE_STATEMENTS[(shape, exclude, stored)] = statement
    return statement


class ModelCache:
    """Per database: the current model and the population size, re-read at most every `ttl`
    seconds (a process may serve several databases: tests, benchmarks)."""

    def __init__(self, ttl: float = 60.0) -> None:
        self._ttl = ttl
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[MatchModel, int, float]] = {}

    def get(self, session: Session) -> tuple[MatchModel, int]:
        bind = session.get_bind()
        key = str(bind.engine.url)
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or time.monotonic() - entry[2] > self._ttl:
                record = session.scalars(
                    select(MatchModelRecord).order_by(MatchModelRecord.id.desc()).limit(1)
                ).first()
                model = MatchModel.from_json(record.parameters) if record else MatchModel()
                total = (
                    session.scalar(
                        select(func.count()).select_from(LocalIdentity).where(LocalIdentity.active)
                    )
                    or 0
                )
                # The thresholds follow the territory's growth since the model's estimation
                # (an unestimated model's prior is the calibration's).
                model.grow_to(total, record.identities if record else CALIBRATION_RECORDS)
                entry = (model, total, time.monotonic())
                self._entries[key] = entry
            return entry[0], entry[1]

    def invalidate(self) -> None:
        with self._lock:
            self._entries.clear()


# Built once (compiled once): these run on every identity received. The name's kind and
# value are compared as two equalities per name, not a row-value IN, which SQLite answers by
# scanning the whole table; a name not sent is looked up as NULL, which matches nothing.
_NAMES = cast(Table, NameFrequency.__table__)
_NAME_COUNTS = select(_NAMES.c.kind, _NAMES.c.value, _NAMES.c["count"]).where(
    or_(
        and_(_NAMES.c.kind == "family", _NAMES.c.value == bindparam("family")),
        and_(_NAMES.c.kind == "given", _NAMES.c.value == bindparam("given")),
    )
)


def frequencies_for(
    session: Session, features: Features, total: int, *, uncounted: int = 0
) -> TermFrequencies:
    """The term frequencies of the incoming identity's names (the only ones a score uses).

    `uncounted`: identities with these names not yet in the table (an identity matched
    before it is stored counts itself, as it would once stored)."""
    counts: dict[tuple[str, str], int] = {}
    if features.birth or features.first:
        rows = session.execute(
            _NAME_COUNTS, {"family": features.birth or None, "given": features.first or None}
        )
        counts = {(kind, value): count for kind, value, count in rows}
    family: Counter[str] = Counter()
    given: Counter[str] = Counter()
    if features.birth:
        family[features.birth] = max(counts.get(("family", features.birth), 0) + uncounted, 1)
    if features.first:
        given[features.first] = max(counts.get(("given", features.first), 0) + uncounted, 1)
    return TermFrequencies(family=family, given=given, total=max(total, 1))


def _name_upsert(dialect: str) -> Any:
    insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
    statement = insert(_NAMES)
    return statement.on_conflict_do_update(
        index_elements=["kind", "value"],
        set_={"count": _NAMES.c["count"] + statement.excluded["count"]},
    )


_NAME_UPSERTS = {dialect: _name_upsert(dialect) for dialect in ("postgresql", "sqlite")}


def count_names(
    session: Session,
    features: Sequence[Features],
    *,
    step: int = 1,
    removed: Sequence[Features] = (),
) -> None:
    """Add (or with step=-1 remove) these identities' names to the frequency table, and
    take those of `removed` out (an update: what cancels out is not written).

    An upsert adding to the count: concurrent feeds counting the same name never collide.
    Names go in a fixed order (sorted), one prepared statement for all of them.
    """
    tally: Counter[tuple[str, str]] = Counter()
    for group, sign in ((features, step), (removed, -step)):
        for f in group:
            if f.birth:
                tally[("family", f.birth[:100])] += sign
            if f.first:
                tally[("given", f.first[:100])] += sign
    tally = Counter({name: n for name, n in tally.items() if n})
    if not tally:
        return
    if session.autoflush:
        session.flush()  # as the ORM statement this replaces did before running
    rows = [{"kind": k, "value": v, "count": c} for (k, v), c in sorted(tally.items())]
    session.execute(_NAME_UPSERTS[session.get_bind().dialect.name], rows)


def save_model(session: Session, model: MatchModel, *, identities: int, now: datetime) -> None:
    session.add(MatchModelRecord(created_at=now, identities=identities, parameters=model.to_json()))
