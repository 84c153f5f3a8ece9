"""Database engine, sessions and the declarative base shared by every domain.

SQLite (embedded default) runs in WAL mode and opens every write transaction with
`BEGIN IMMEDIATE`, behind a writer gate (a mutex, and a lock file across processes): almost
every transaction here writes (reads of patient data write their audit row); taking the
write lock up front avoids the snapshot-upgrade failures of deferred transactions (ADR 0003).
"""

from __future__ import annotations

import fcntl
import os
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import DateTime, Engine, MetaData, create_engine, event
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.pool import ConnectionPoolEntry
from sqlalchemy.types import TypeDecorator

SQLITE_WRITE_WAIT_SECONDS = 30.0
_HOLDS_WRITE_LOCK = "partage_holds_write_lock"

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on both SQLite (which drops the zone) and PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    @property
    def python_type(self) -> type[datetime]:
        return datetime

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UtcDateTime}


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_uuid() -> uuid.UUID:
    return uuid.uuid4()


def make_engine(url: str, *, echo: bool = False, read_only: bool = False) -> Engine:
    """An engine; `read_only` on SQLite gives deferred, query-only transactions that never
    wait for the write lock (reads that must not queue behind writers, e.g. key reloads)."""
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            echo=echo,
            connect_args={"check_same_thread": False, "timeout": 30},
            # As many as the server's worker threads (40): an overflow connection is closed
            # on return, and reopening one costs its PRAGMAs.
            pool_size=40,
            max_overflow=20,
        )
        _configure_sqlite(engine, read_only=read_only)
        return engine
    # No pre-ping (a round trip per checkout, on every request): connections are recycled
    # instead, and a dropped one fails its request once.
    if read_only:
        # Single-statement reads need no transaction: no BEGIN, and nothing to roll back
        # when the connection goes back to the pool.
        return create_engine(
            url,
            echo=echo,
            pool_size=20,
            max_overflow=20,
            pool_recycle=1800,
            isolation_level="AUTOCOMMIT",
            pool_reset_on_return=None,
        )
    return create_engine(url, echo=echo, pool_size=20, max_overflow=20, pool_recycle=1800)


def _configure_sqlite(engine: Engine, *, read_only: bool) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
        # Python's sqlite3 must not open transactions itself: we emit BEGIN ourselves.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        # A checkpoint (the WAL copied back into the database, with an fsync) every 10,000
        # pages (40 MB) rather than SQLite's 1,000: with a large territory each identity
        # received dirties some 40 pages, so one commit in 25 paid a checkpoint (a third of
        # the p95 of a transaction); now about one in 250 does, and pages written again in between
        # are copied once.
        cursor.execute("PRAGMA wal_autocheckpoint=10000")
        if read_only:
            cursor.execute("PRAGMA query_only=ON")
        cursor.close()

    if read_only:

        @event.listens_for(engine, "begin")
        def _on_begin_read(connection: Any) -> None:
            connection.exec_driver_sql("BEGIN")

        return

    gate = _WriterGate(engine.url.database)

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        gate.enter()
        connection.info[_HOLDS_WRITE_LOCK] = True
        try:
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        except BaseException:
            connection.info.pop(_HOLDS_WRITE_LOCK, None)
            gate.leave()
            raise

    def _finish(connection: Any, verb: str) -> None:
        if not connection.info.pop(_HOLDS_WRITE_LOCK, False):
            return
        try:
            # End the transaction here, so that the gate opens only once it is over; the
            # driver's own commit()/rollback() that follows finds nothing left to do.
            raw = connection.connection.dbapi_connection
            if raw is not None and raw.in_transaction:
                raw.execute(verb)
        finally:
            gate.leave()

    @event.listens_for(engine, "commit")
    def _on_commit(connection: Any) -> None:
        _finish(connection, "COMMIT")

    @event.listens_for(engine, "rollback")
    def _on_rollback(connection: Any) -> None:
        _finish(connection, "ROLLBACK")


class _WriterGate:
    """One SQLite writer at a time, queued rather than polling.

    SQLite's busy handler waits for the write lock by sleeping (1 ms, 2 ms … up to 100 ms) and
    retrying: under load the sleeping, not the work, sets the pace, and the outcome swings
    from run to run. Writers of this process queue on a mutex; processes sharing the file
    (several workers) queue on an advisory lock beside it, which the kernel hands over as
    soon as it is released, and drops if its holder dies.
    """

    def __init__(self, database: str | None) -> None:
        self._threads = threading.Lock()
        self._file: int | None = None
        if database and database != ":memory:" and not database.startswith("file:"):
            self._file = os.open(f"{database}-writer.lock", os.O_RDWR | os.O_CREAT, 0o600)

    def enter(self) -> None:
        if not self._threads.acquire(timeout=SQLITE_WRITE_WAIT_SECONDS):
            raise TimeoutError("the database is busy: no write slot within the time limit")
        if self._file is not None:
            try:
                fcntl.flock(self._file, fcntl.LOCK_EX)
            except BaseException:
                self._threads.release()
                raise

    def leave(self) -> None:
        try:
            if self._file is not None:
                fcntl.flock(self._file, fcntl.LOCK_UN)
        finally:
            self._threads.release()


def make_sessionmaker(engine: Engine, **info: Any) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False, info=info)


@contextmanager
def transaction(sessions: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any error."""
    session = sessions()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
