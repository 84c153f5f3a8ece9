"""A server killed (SIGKILL) while deposits are in flight: after a restart every document
stored is whole and readable, nothing half-stored remains, and no blob is left that no row
names. Then the key-encryption key is rotated and retired from the command line, and every
document still reads."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from partage.config import Settings
from partage.db import transaction
from partage.documents.models import DocumentContent, DocumentEntry
from partage.documents.synthetic import pdf, provide_bundle
from partage.migrations.runner import upgrade
from partage.platform import Platform
from partage.security import actions
from partage.security.models import EstablishmentKind
from partage.security.principal import operator_principal
from tests.conftest import directory_practitioner, free_port, new_database
from tests.documents.stored import unreleased_bytes
from tests.identity.factories import receive, traits, unique_family

OID = "1.2.250.1.999.88.1"
RPPS = "810000000042"

pytestmark = pytest.mark.live


def _env(data_dir: Path, url: str, port: int) -> dict[str, str]:
    return {
        **os.environ,
        "PARTAGE_DATA_DIR": str(data_dir),
        "PARTAGE_DATABASE_URL": url,
        "PARTAGE_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "PARTAGE_LOG_LEVEL": "WARNING",
    }


def _serve(env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    server = subprocess.Popen(
        [sys.executable, "-m", "partage", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            time.sleep(0.1)
    server.kill()
    raise RuntimeError("the server did not start")


def _setup(data_dir: Path, url: str, port: int) -> tuple[str, str]:
    settings = Settings(data_dir=data_dir, database_url=url, public_url=f"http://127.0.0.1:{port}")
    platform = Platform.create(settings)
    upgrade(platform.engine)
    platform.prepare()
    with transaction(platform.sessions) as session:
        territory = actions.ensure_territory(session, code="GHT-CRASH", name="GHT")
        establishment = actions.create_establishment(
            session,
            actor=operator_principal(),
            territory=territory,
            name="CHU",
            code="CHU-CRASH",
            kind=EstablishmentKind.hospital,
            oid=OID,
        )
        created = actions.create_client(
            session,
            platform.keyring,
            actor=operator_principal(),
            name="DPI",
            scopes="system/DocumentReference.crs system/Binary.r",
            establishment=establishment,
        )
    directory_practitioner(platform, RPPS, family="X", given=None)
    for i in range(5):
        receive(platform, establishment, f"IPP-{i}", traits(unique_family()))
    platform.close()
    assert created.client_secret is not None
    return created.client.client_id, created.client_secret


def _check_repository(data_dir: Path, url: str) -> int:
    """Every row's content reads whole; the store holds nothing else. Returns the number
    of documents."""
    platform = Platform.create(Settings(data_dir=data_dir, database_url=url))
    try:
        with platform.read_sessions() as session:
            entries = session.scalars(select(DocumentEntry)).all()
            contents = session.scalars(select(DocumentContent)).all()
        for content in contents:
            assert len(platform.repository.read(content)) == content.size
        assert {e.sha256 for e in entries} == {c.sha256 for c in contents}
        assert unreleased_bytes(data_dir / "blobs", [c.storage_key for c in contents]) == 0
        return len(entries)
    finally:
        platform.close()


def test_kill_during_deposits_then_restart_and_rotate_keys(tmp_path: Path) -> None:
    database = new_database(tmp_path)
    port = free_port()
    try:
        client_id, secret = _setup(tmp_path, database.url, port)
        env = _env(tmp_path, database.url, port)
        server = _serve(env, port)
        base = f"http://127.0.0.1:{port}"
        token = httpx.post(
            f"{base}/oauth2/token",
            data={"grant_type": "client_credentials"},
            auth=(client_id, secret),
        ).json()["access_token"]
        acknowledged: list[str] = []
        stop = threading.Event()

        def send(worker: int) -> None:
            with httpx.Client(timeout=10) as http:
                n = 0
                while not stop.is_set():
                    n += 1
                    bundle = provide_bundle(
                        content=pdf(["crash"], size=200_000, seed=f"{worker}-{n}-{uuid.uuid4()}"),
                        domain_oid=OID,
                        local_id=f"IPP-{n % 5}",
                        author_rpps=RPPS,
                    )
                    try:
                        response = http.post(
                            f"{base}/fhir",
                            content=json.dumps(bundle),
                            headers={
                                "Authorization": f"Bearer {token}",
                                "Content-Type": "application/fhir+json",
                            },
                        )
                    except httpx.HTTPError:
                        return
                    if response.status_code == 200:
                        acknowledged.append(
                            bundle["entry"][1]["resource"]["masterIdentifier"]["value"]
                        )

        senders = [threading.Thread(target=send, args=(w,)) for w in range(4)]
        for sender in senders:
            sender.start()
        time.sleep(2.0)
        server.send_signal(signal.SIGKILL)
        server.wait()
        stop.set()
        for sender in senders:
            sender.join()
        assert acknowledged, "no deposit went through before the kill"

        # The restart recovers what the killed process left staged.
        server = _serve(env, port)
        server.terminate()
        server.wait(timeout=30)
        stored = _check_repository(tmp_path, database.url)
        assert stored >= len(acknowledged)  # acknowledged means committed

        cli = [sys.executable, "-m", "partage", "documents"]
        rotated = subprocess.run([*cli, "rotate-kek"], env=env, capture_output=True, text=True)
        assert rotated.returncode == 0, rotated.stderr
        assert f"{stored:,} data keys rewrapped" in rotated.stdout
        previous = rotated.stdout.split(
            "Previous keys, to retire once backups no longer need them: "
        )[1].split()[0]
        retired = subprocess.run(
            [*cli, "retire-kek", previous], env=env, capture_output=True, text=True
        )
        assert retired.returncode == 0, retired.stdout + retired.stderr
        assert _check_repository(tmp_path, database.url) == stored
        current = rotated.stdout.split("Current key-encryption key: ")[1].split(";")[0]
        refused = subprocess.run(
            [*cli, "retire-kek", current], env=env, capture_output=True, text=True
        )
        assert refused.returncode != 0 and "current" in refused.stdout + refused.stderr
    finally:
        database.drop()
