"""Everything a process needs, built once from the settings and passed explicitly."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from partage.audit.actions import AUDIT_KEY_INFO
from partage.audit.batch import AuditBatcher
from partage.config import Settings
from partage.db import make_engine, make_sessionmaker
from partage.documents.repository import Repository
from partage.security.keyring import Keyring
from partage.security.passwords import Passwords
from partage.security.portal import bootstrap_portal_client
from partage.security.signing import SigningKeys

AUDIT_CHAIN_PURPOSE = "audit-chain"

log = logging.getLogger(__name__)


@dataclass
class Platform:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    # Reads that must never wait behind a writer: deferred, query-only transactions on
    # SQLite; autocommit connections on PostgreSQL.
    read_sessions: sessionmaker[Session]
    keyring: Keyring
    passwords: Passwords
    signing_keys: SigningKeys
    audit_batcher: AuditBatcher
    # Documents' contents: encrypted, content-addressed, local files or an object store.
    repository: Repository

    @classmethod
    def create(cls, settings: Settings) -> Platform:
        settings.check_production()
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        keyring = Keyring.from_settings(settings)
        url = settings.resolved_database_url
        engine = make_engine(url)
        read_engine = make_engine(url, read_only=True)
        sessions = make_sessionmaker(
            engine, **{AUDIT_KEY_INFO: keyring.subkey(AUDIT_CHAIN_PURPOSE)}
        )
        read_sessions = make_sessionmaker(read_engine)
        return cls(
            settings=settings,
            engine=engine,
            sessions=sessions,
            read_sessions=read_sessions,
            keyring=keyring,
            passwords=Passwords(settings),
            signing_keys=SigningKeys(sessions, read_sessions, keyring),
            audit_batcher=AuditBatcher(sessions),
            repository=Repository.from_settings(settings, keyring, sessions=read_sessions),
        )

    def prepare(self) -> None:
        """Once the schema is migrated: make sure signing keys exist and load them, and that
        the portal is registered as a client of the provider."""
        self.signing_keys.ensure_and_load()
        bootstrap_portal_client(self.sessions, self.settings)
        # What deposits interrupted by a crash left in packs: given back. Local files
        # only (dead processes' packs: cheap, safe beside live processes); an object store
        # is swept by `partage documents recover`.
        if self.repository.is_local:
            self.repository.recover(self.sessions)
        self._check_autovacuum()

    def _check_autovacuum(self) -> None:
        """Say so when PostgreSQL runs without autovacuum: the statistics of the tables that
        grow (documents, audit) then go stale, and the plans kept for the busiest statements
        scan whole tables (the deposit loses a fifth of its throughput at 10,000 documents
        already). Nothing is changed: the server's settings are its administrators'."""
        if self.engine.dialect.name != "postgresql":
            return
        with self.engine.connect() as connection:
            setting = connection.exec_driver_sql("SHOW autovacuum").scalar()
        if setting != "on":
            log.warning(
                "PostgreSQL runs with autovacuum off: run ANALYZE regularly (or turn it on), "
                "or the plans of growing tables go stale"
            )

    @property
    def audit_key(self) -> bytes:
        return self.keyring.subkey(AUDIT_CHAIN_PURPOSE)

    @property
    def read_engine(self) -> Engine:
        bind = self.read_sessions.kw["bind"]
        assert isinstance(bind, Engine)
        return bind

    def close(self) -> None:
        self.engine.dispose()
        read_engine = self.read_sessions.kw.get("bind")
        if isinstance(read_engine, Engine):
            read_engine.dispose()
