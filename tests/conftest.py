"""Shared fixtures: a real database (SQLite, or PostgreSQL when PARTAGE_TEST_DATABASE_URL is
set), a real server on a loopback port, and factories for the security directory.

Each test session works in a database of its own: a temporary SQLite file, or a schema of
its own in PostgreSQL (so parallel runs and the tamper tests never see each other).
"""

from __future__ import annotations

import os
import secrets
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pyotp
import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from partage.app import create_app
from partage.config import Settings
from partage.db import transaction
from partage.migrations.runner import upgrade
from partage.platform import Platform
from partage.security import actions
from partage.security.authn import set_totp_secret
from partage.security.models import Account, Establishment, EstablishmentKind, OAuthClient, Profile
from partage.security.principal import operator_principal

PG_URL = os.environ.get("PARTAGE_TEST_DATABASE_URL", "")
TEST_PASSWORD = "correct horse battery staple"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class TestDatabase:
    url: str
    drop: Callable[[], None]


def new_database(tmp_dir: Path) -> TestDatabase:
    if not PG_URL:
        path = tmp_dir / f"partage-{uuid.uuid4().hex[:8]}.db"
        return TestDatabase(f"sqlite:///{path}", lambda: None)
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    separator = "&" if "?" in PG_URL else "?"

    def drop() -> None:
        with admin.connect() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()

    return TestDatabase(f"{PG_URL}{separator}options=-csearch_path%3D{schema}", drop)


def make_settings(tmp_dir: Path, database_url: str, port: int) -> Settings:
    return Settings(
        data_dir=tmp_dir,
        database_url=database_url,
        public_url=f"http://127.0.0.1:{port}",
        # Still Argon2id, at a cost that keeps the suite quick.
        argon2_time_cost=1,
        argon2_memory_kib=8192,
        argon2_parallelism=1,
        log_json=True,
    )


def build_platform(tmp_dir: Path, port: int) -> tuple[Platform, TestDatabase]:
    database = new_database(tmp_dir)
    platform = Platform.create(make_settings(tmp_dir, database.url, port))
    upgrade(platform.engine)
    with transaction(platform.sessions) as session:
        actions.ensure_territory(session, code="GHT-TEST", name="GHT de test")
    return platform, database


@pytest.fixture(scope="session")
def server_port() -> int:
    return free_port()


@pytest.fixture(scope="session")
def platform(tmp_path_factory: pytest.TempPathFactory, server_port: int) -> Iterator[Platform]:
    built, database = build_platform(tmp_path_factory.mktemp("platform"), server_port)
    yield built
    built.close()
    database.drop()


@pytest.fixture
def fresh_platform(tmp_path: Path) -> Iterator[Platform]:
    """A database of its own, for tests that break things on purpose."""
    built, database = build_platform(tmp_path, free_port())
    yield built
    built.close()
    database.drop()


@pytest.fixture(scope="session")
def app(platform: Platform):  # type: ignore[no-untyped-def]
    return create_app(platform.settings, platform=platform)


@pytest.fixture
def client(app) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    with TestClient(app, base_url=app.state.platform.settings.issuer) as test_client:
        yield test_client


@contextmanager
def serving(app: FastAPI, port: int) -> Iterator[str]:
    """`app` served by uvicorn on a real loopback socket, for as long as the block runs."""
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_config=None, access_log=False, lifespan="off"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="session")
def live_server(app, server_port: int) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """The app served by uvicorn on a real loopback socket."""
    with serving(app, server_port) as base:
        yield base


# --- factories ---------------------------------------------------------------------------


def unique(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


@dataclass
class MadeAccount:
    account: Account
    login: str
    password: str
    totp_secret: str | None

    def totp_now(self) -> str:
        assert self.totp_secret is not None
        return pyotp.TOTP(self.totp_secret).now()


@pytest.fixture
def make_establishment(platform: Platform) -> Callable[..., Establishment]:
    def make(code: str | None = None, **kwargs: object) -> Establishment:
        with transaction(platform.sessions) as session:
            from partage.security.service import get_territory

            territory = get_territory(session, code="GHT-TEST")
            assert territory is not None
            return actions.create_establishment(
                session,
                actor=operator_principal(),
                territory=territory,
                name=str(kwargs.pop("name", "Établissement de test")),
                code=code or unique("EST").upper(),
                kind=kwargs.pop("kind", EstablishmentKind.hospital),  # type: ignore[arg-type]
                **kwargs,  # type: ignore[arg-type]
            )

    return make


@pytest.fixture
def make_account(
    platform: Platform, make_establishment: Callable[..., Establishment]
) -> Callable[..., MadeAccount]:
    def make(
        profile: Profile = Profile.hospital_physician,
        *,
        totp: bool = True,
        establishment: Establishment | None = None,
        password: str = TEST_PASSWORD,
    ) -> MadeAccount:
        login = unique(profile.value.replace("_", "-"))
        if establishment is None and profile is not Profile.patient:
            establishment = make_establishment()
        secret = pyotp.random_base32() if totp else None
        with transaction(platform.sessions) as session:
            account = actions.create_account(
                session,
                platform.passwords,
                actor=operator_principal(),
                login=login,
                display_name=f"Test {profile.value}",
                profile=profile,
                password=password,
                establishment=establishment,
            )
            if secret:
                set_totp_secret(platform, account, secret)
        return MadeAccount(account, login, password, secret)

    return make


@pytest.fixture
def make_client(platform: Platform) -> Callable[..., tuple[OAuthClient, str | None]]:
    def make(scopes: str = "system/*.rs", **kwargs: object) -> tuple[OAuthClient, str | None]:
        with transaction(platform.sessions) as session:
            created = actions.create_client(
                session,
                platform.keyring,
                actor=operator_principal(),
                name=str(kwargs.pop("name", unique("Test app"))),
                scopes=scopes,
                **kwargs,  # type: ignore[arg-type]
            )
        return created.client, created.client_secret

    return make


def create_hospital(platform: Platform, code: str, oid: str) -> Establishment:
    """A hospital of the test territory, with its patient identifier domain `oid`."""
    with transaction(platform.sessions) as session:
        from partage.security.service import get_territory

        territory = get_territory(session, code="GHT-TEST")
        assert territory is not None
        return actions.create_establishment(
            session,
            actor=operator_principal(),
            territory=territory,
            name=f"Hôpital {code}",
            code=code,
            kind=EstablishmentKind.hospital,
            oid=oid,
        )


def directory_practitioner(
    platform: Platform,
    national_id: str,
    *,
    family: str = "MARTIN",
    given: str | None = "Claire",
) -> uuid.UUID:
    """A professional of the directory (as an RPPS import leaves one); their id."""
    from partage.directory.models import Practitioner

    with transaction(platform.sessions) as session:
        practitioner = Practitioner(
            national_id=national_id,
            id_type=national_id[0],
            local_id=national_id[1:],
            family_name=family,
            given_name=given,
            family_name_folded=family.upper(),
            given_name_folded=given.upper() if given else None,
            content_hash="-",
        )
        session.add(practitioner)
        session.flush()
        return practitioner.id
