"""Writing a bulk import's rows: in chunks, in a thread of its own, while matching goes on.

The rows are built by the import (`importer`) in the driver's form; they go in with one
statement per table and chunk (COPY on PostgreSQL, one JSON array on SQLite), in the
import's transaction.
"""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any, cast

from sqlalchemy import Table
from sqlalchemy.orm import Session

from partage.bulk import Bulk
from partage.identity.blocking import KEY_COLUMNS, stored_keys
from partage.identity.features import Features
from partage.identity.models import Link, LocalIdentity, Person, Review, ReviewStatus
from partage.identity.service import IdentityInput
from partage.identity.store import trait_columns
from partage.security.models import Establishment

_PERSONS = cast(Table, Person.__table__)
_IDENTITIES = cast(Table, LocalIdentity.__table__)
_LINKS = cast(Table, Link.__table__)
_REVIEWS = cast(Table, Review.__table__)
# SQLite's page cache while the file's rows go into the table and its dozen indexes (KiB).
# The default (2 MB) makes every insert of a large file re-read and spill index pages.
_SQLITE_IMPORT_CACHE_KIB = 1024 * 1024


@contextmanager
def large_cache(session: Session) -> Iterator[None]:
    """On SQLite, a page cache that holds the indexes being written, for the import only."""
    if session.get_bind().dialect.name != "sqlite":
        yield
        return
    driver: Any = session.connection().connection.dbapi_connection
    before = driver.execute("PRAGMA cache_size").fetchone()[0]
    driver.execute(f"PRAGMA cache_size=-{_SQLITE_IMPORT_CACHE_KIB}")
    try:
        yield
    finally:
        driver.execute(f"PRAGMA cache_size={int(before)}")


@dataclass
class Chunk:
    """Rows of consecutive new identities, ready for `_write` (ids in the driver's form)."""

    persons: list[tuple[Any, ...]] = field(default_factory=list)
    identities: list[tuple[Any, ...]] = field(default_factory=list)
    links: list[tuple[Any, ...]] = field(default_factory=list)
    reviews: list[tuple[Any, ...]] = field(default_factory=list)


CHUNK_ROWS = 20_000


class Writer:
    """Writes chunks in a thread of its own while matching goes on, on the session's
    connection (which the matching does not use meanwhile), in the session's transaction.

    The database's work overlaps the matching on a second core: PostgreSQL's, in its own
    process, from COPY; SQLite's (B-trees and a dozen indexes) in this process, while the
    driver has left Python's lock — for the whole of a chunk, since each table's rows go in
    one statement (`_json_insert`; row by row, the thread would wait for the lock after
    every row). Chunks are written in order, each persons → identities → links → reviews,
    so that every row refers to rows already there. An error in the thread is raised in the
    caller.
    """

    def __init__(self, session: Session, bulk: Bulk, author: str, now: datetime) -> None:
        self._author = author
        self._insert: Insert = bulk.insert
        if not bulk.postgresql:
            driver = session.connection().connection.dbapi_connection
            quote = session.get_bind().dialect.identifier_preparer.quote
            self._insert = partial(_json_insert, driver, quote)
        self._bulk = bulk
        self._stamp = bulk.value(_PERSONS, "created_at", now)
        for table, column in (
            (_IDENTITIES, "birth_date"),
            (_LINKS, "explanation"),
            (_REVIEWS, "explanation"),
        ):
            bulk.value(table, column, None)  # its converter found now, not in the thread
        self._queue: queue.Queue[Chunk | None] = queue.Queue(maxsize=2)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="identity-import-writer")

    def __enter__(self) -> Writer:
        self._thread.start()
        return self

    def put(self, chunk: Chunk) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put(chunk)

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        self._queue.put(None)
        self._thread.join()
        if kind is None and self._error is not None:
            raise self._error

    def _run(self) -> None:
        while (chunk := self._queue.get()) is not None:
            if self._error is not None:
                continue  # drained: the caller learns of the error at its next put
            try:
                _write(self._bulk, self._insert, chunk, self._author, self._stamp)
            except BaseException as error:  # handed over to the caller
                self._error = error


_IDENTITY_COLUMNS = (
    "id", "establishment_id", "local_id", "person_id", "origin_person_id",
    "birth_family_name", "given_names", "sex", "birth_date", "birth_place_code",
    "used_family_name", "address", "postal_code", "city", "phone", "ins", "family_folded",
    "used_folded", "given_folded", "ins_oid", "status",
    "doubtful", "fictitious", "homonym", "usurped", "active", "version", "created_at",
    "updated_at", *KEY_COLUMNS,
)  # fmt: skip
_ATTRIBUTE_NAMES = ("doubtful", "fictitious", "homonym", "usurped")


def identity_row(
    establishment: Establishment,
    local_id: str,
    value: IdentityInput,
    f: Features,
    identity_id: Any,
    person: Any,
    origin: Any,
) -> tuple[Any, ...]:
    """A row of `_IDENTITY_COLUMNS` without its last columns (active, version, times, keys
    come after: `_write`); ids in the driver's form, the birth date as a date."""
    traits = trait_columns(value.traits)
    return (
        identity_id, establishment.id, local_id, person, origin,
        traits["birth_family_name"], traits["given_names"], traits["sex"], traits["birth_date"],
        traits["birth_place_code"], traits["used_family_name"], traits["address"],
        traits["postal_code"], traits["city"], traits["phone"], traits["ins"],
        traits["family_folded"], traits["used_folded"], traits["given_folded"], value.ins_oid,
        value.status.value, *(name in value.attributes for name in _ATTRIBUTE_NAMES),
        *stored_keys(f),
    )  # fmt: skip


Insert = Callable[[Table, Sequence[str], Sequence[tuple[Any, ...]]], None]


def _json_insert(
    driver: Any,
    quote: Callable[[str], str],
    table: Table,
    columns: Sequence[str],
    rows: Sequence[tuple[Any, ...]],
) -> None:
    """Rows into a SQLite table in one statement, as one JSON array (numbers, text, null:
    SQLite reads each back to the very value bound otherwise)."""
    if not rows:
        return
    names = ", ".join(quote(c) for c in columns)
    values = ", ".join(f"value ->> {k}" for k in range(len(columns)))
    sql = f"INSERT INTO {quote(table.name)} ({names}) SELECT {values} FROM json_each(?)"  # noqa: S608
    cursor = driver.cursor()
    try:
        cursor.execute(sql, (json.dumps(rows),))
    finally:
        cursor.close()


def _write(bulk: Bulk, insert: Insert, chunk: Chunk, author: str, stamp: Any) -> None:
    """One chunk's rows in the driver's form: ids are already, the time stamp was converted
    once, and only the columns whose type needs it (dates, JSON) are converted row by row."""
    # Persons first (surviving ones before those merged into them: foreign keys).
    ordered = sorted(chunk.persons, key=lambda row: row[1] != "active")
    insert(
        _PERSONS,
        ("id", "status", "merged_into_id", "created_at", "updated_at"),
        [(*row, stamp, stamp) for row in ordered],
    )
    if not chunk.identities:
        return
    yes, no = bulk.value(_IDENTITIES, "active", True), bulk.value(_IDENTITIES, "active", False)
    flag = {True: yes, False: no}
    establishment_id = bulk.value(_IDENTITIES, "establishment_id", chunk.identities[0][1])
    keys = len(KEY_COLUMNS)
    insert(
        _IDENTITIES,
        _IDENTITY_COLUMNS,
        [
            (
                *row[:1],
                establishment_id,
                *row[2:8],
                bulk.value(_IDENTITIES, "birth_date", row[8]),
                *row[9:21],
                flag[row[21]],
                flag[row[22]],
                flag[row[23]],
                flag[row[24]],
                yes,
                1,
                stamp,
                stamp,
                *row[-keys:],
            )
            for row in chunk.identities
        ],
    )
    link_columns = (
        "id", "local_identity_id", "person_id", "method", "score", "explanation", "started_at",
        "ended_at", "ended_reason", "author",
    )  # fmt: skip
    insert(
        _LINKS,
        link_columns,
        [
            (
                link_id,
                identity,
                person,
                method,
                score,
                bulk.value(_LINKS, "explanation", why),  # None: JSON null, as the ORM
                stamp,
                None if ended is None else stamp,
                ended,
                author,
            )
            for link_id, identity, person, method, score, why, ended in chunk.links
        ],
    )
    open_status = bulk.value(_REVIEWS, "status", ReviewStatus.open.value)
    insert(
        _REVIEWS,
        ("id", "first_id", "second_id", "score", "explanation", "status", "created_at"),
        [
            (
                review_id,
                first,
                second,
                score,
                bulk.value(_REVIEWS, "explanation", why),
                open_status,
                stamp,
            )
            for review_id, first, second, score, why in chunk.reviews
        ],
    )
