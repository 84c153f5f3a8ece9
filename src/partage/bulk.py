"""Bulk statements of the imports (directory, identities), with values in the driver's own form.

An import writes tens of thousands of rows per chunk. Here they go to the driver as they
are: ids in the form the driver returns them (hex text on SQLite, `uuid.UUID` on
PostgreSQL), constants converted once per chunk by their column's type, and no per-row
processing by SQLAlchemy. PostgreSQL receives new rows by COPY and key lists as one array;
SQLite receives key lists as one JSON array. Statements run on the driver connection of
the session, inside the transaction the session began (on SQLite, behind the writer gate).

Table and column names come from the models, never from a file (hence `noqa: S608`);
values are always bound.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Dialect, Table, insert
from sqlalchemy.exc import DBAPIError, StatementError
from sqlalchemy.orm import Session

Row = tuple[Any, ...]
ID_BATCH = 4096


class Bulk:
    def __init__(self, session: Session) -> None:
        connection = session.connection()  # begins the session's transaction
        self._dialect = connection.dialect
        self._driver: Any = connection.connection.dbapi_connection
        self.postgresql = self._dialect.name == "postgresql"
        self._mark = "%s" if self.postgresql else "?"
        self._quote = self._dialect.identifier_preparer.quote
        self._processors: dict[tuple[str, str], Callable[[Any], Any] | None] = {}
        self._fresh_ids: list[Any] = []

    def value(self, table: Table, column: str, value: Any) -> Any:
        """`value` as the driver takes it for `table.column`."""
        key = (table.name, column)
        if key not in self._processors:
            kind = table.c[column].type.dialect_impl(self._dialect)
            self._processors[key] = kind.bind_processor(self._dialect)
        process = self._processors[key]
        return process(value) if process is not None else value

    def new_id(self) -> Any:
        """A new id: a time-ordered UUID (version 7), so that the rows an import creates
        go to the right edge of the id indexes instead of anywhere in them (on a national
        extract, random ids made every chunk rewrite pages all over those indexes)."""
        if not self._fresh_ids:
            self._fresh_ids = self._time_ordered_ids(ID_BATCH)
        return self._fresh_ids.pop()

    def _time_ordered_ids(self, count: int) -> list[Any]:
        # One read of the system's randomness for many ids, rather than one per id.
        raw = bytearray(os.urandom(16 * count))
        milliseconds = (time.time_ns() // 1_000_000).to_bytes(6, "big")
        for position, byte in enumerate(milliseconds):
            raw[position::16] = bytes((byte,)) * count
        raw[6::16] = bytes(b & 0x0F | 0x70 for b in raw[6::16])  # version 7
        raw[8::16] = bytes(b & 0x3F | 0x80 for b in raw[8::16])  # RFC 9562 variant
        ids = sorted((bytes(raw[i : i + 16]) for i in range(0, len(raw), 16)), reverse=True)
        if self.postgresql:
            return [uuid.UUID(bytes=id_bytes) for id_bytes in ids]
        return [id_bytes.hex() for id_bytes in ids]  # how the `Uuid` type stores them

    def fetch(
        self, table: Table, key: str, keys: Collection[Any], columns: Sequence[str]
    ) -> dict[Any, Row]:
        """The rows whose `key` is one of `keys`, as (key, *columns), by key."""
        if not keys:
            return {}
        names = ", ".join(self._quote(c) for c in (key, *columns))
        sql = f"SELECT {names} FROM {self._quote(table.name)} WHERE {self._in(key)}"  # noqa: S608
        cursor = self._driver.cursor()
        try:
            cursor.execute(sql, (self._list(keys),))
            return {row[0]: row for row in cursor.fetchall()}
        finally:
            cursor.close()

    def insert(self, table: Table, columns: Sequence[str], rows: Sequence[Row]) -> None:
        if not rows:
            return
        names = ", ".join(self._quote(c) for c in columns)
        if self.postgresql:
            # COPY: several times faster than even multi-row INSERTs.
            copy_sql = f"COPY {self._quote(table.name)} ({names}) FROM STDIN"
            with self._driver.cursor() as cursor, cursor.copy(copy_sql) as copy:
                for row in rows:
                    copy.write_row(row)
            return
        marks = ", ".join([self._mark] * len(columns))
        sql = f"INSERT INTO {self._quote(table.name)} ({names}) VALUES ({marks})"  # noqa: S608
        self._execute_many(sql, rows)

    def update(
        self, table: Table, columns: Sequence[str], rows: Sequence[Row], *, null: Iterable[str] = ()
    ) -> None:
        """Set `columns` (and `null` to NULL) on the rows whose id ends each tuple."""
        if not rows:
            return
        assignments = [f"{self._quote(c)} = {self._mark}" for c in columns]
        assignments += [f"{self._quote(c)} = NULL" for c in null]
        where = f"WHERE id = {self._mark}"
        sql = f"UPDATE {self._quote(table.name)} SET {', '.join(assignments)} {where}"  # noqa: S608
        self._execute_many(sql, rows)

    def set_column(self, table: Table, column: str, value: Any, ids: Collection[Any]) -> None:
        """One value for one column of many rows, by id (one statement)."""
        if not ids:
            return
        assignment = f"{self._quote(column)} = {self._mark}"
        sql = f"UPDATE {self._quote(table.name)} SET {assignment} WHERE {self._in('id')}"  # noqa: S608
        cursor = self._driver.cursor()
        try:
            cursor.execute(sql, (value, self._list(ids)))
        finally:
            cursor.close()

    def _execute_many(self, sql: str, rows: Sequence[Row]) -> None:
        cursor = self._driver.cursor()
        try:
            cursor.executemany(sql, rows)
        finally:
            cursor.close()

    def _in(self, column: str) -> str:
        if self.postgresql:
            return f"{self._quote(column)} = ANY({self._mark})"
        return f"{self._quote(column)} IN (SELECT value FROM json_each({self._mark}))"  # noqa: S608

    def _list(self, values: Collection[Any]) -> Any:
        return list(values) if self.postgresql else json.dumps(list(values))


COPY_FROM = 3


def insert_rows(session: Session, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """A few rows from a busy write path (all with the same keys, values as SQLAlchemy takes
    them): by COPY on PostgreSQL from `COPY_FROM` rows on (a Core executemany sends one
    statement per row, and its handling costs more than the rows; a COPY costs two round
    trips, more than one INSERT of a single row); otherwise a Core insert (SQLite's
    statements do not cross a network). Each value passes its column type's bind
    processing, as it would through SQLAlchemy (UTC times checked, JSON serialised)."""
    if not rows:
        return
    connection = session.connection()
    dialect = connection.dialect
    if dialect.name != "postgresql" or len(rows) < COPY_FROM:
        connection.execute(insert(table), list(rows))
        return
    columns = list(rows[0])
    processors = [_bind_processor(table, column, dialect) for column in columns]
    quote = dialect.identifier_preparer.quote
    statement = f"COPY {quote(table.name)} ({', '.join(quote(c) for c in columns)}) FROM STDIN"
    driver: Any = connection.connection.dbapi_connection
    dbapi_error: type[Exception] = dialect.loaded_dbapi.Error
    try:
        with driver.cursor() as cursor, cursor.copy(statement) as copy:
            for row in rows:
                values = (row[column] for column in columns)
                copy.write_row(
                    [
                        value if process is None else process(value)
                        for value, process in zip(values, processors, strict=True)
                    ]
                )
    except dbapi_error as error:
        # As SQLAlchemy would raise it (a duplicate is an IntegrityError, a NUL byte a
        # DataError), for the callers that tell them apart.
        raise DBAPIError.instance(statement, None, error, dbapi_error) from error
    except (TypeError, ValueError) as error:  # a value its column type refuses
        raise StatementError(str(error), statement, None, error) from error


_PROCESSORS: dict[tuple[str, str, str], Callable[[Any], Any] | None] = {}


def _bind_processor(table: Table, column: str, dialect: Dialect) -> Callable[[Any], Any] | None:
    key = (dialect.name, table.name, column)
    if key not in _PROCESSORS:
        _PROCESSORS[key] = table.c[column].type.dialect_impl(dialect).bind_processor(dialect)
    return _PROCESSORS[key]
