"""The `partage` command line, driven in-process (and once as a real program)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, select, text
from typer.testing import CliRunner, Result

from partage.app import create_app
from partage.cli.main import app
from partage.config import Settings, get_settings
from partage.db import transaction
from partage.platform import Platform
from partage.security.models import Account, Establishment, Profile
from tests.conftest import new_database

STRONG_PASSWORD = "Tilleul-Clain-Marais-42"


@dataclass
class Cli:
    env: dict[str, str]
    database_url: str
    runner: CliRunner

    def run(
        self,
        *args: str,
        input: str | None = None,
        expect: int = 0,
        env: dict[str, str] | None = None,
    ) -> Result:
        get_settings.cache_clear()
        result = self.runner.invoke(app, list(args), input=input, env={**self.env, **(env or {})})
        get_settings.cache_clear()
        assert result.exit_code == expect, (result.stdout, result.stderr, result.exception)
        # Whatever went wrong was said in a sentence, not a stack trace.
        assert "Traceback" not in result.stdout + result.stderr
        return result

    def json(self, *args: str, input: str | None = None) -> Any:
        return json.loads(self.run(*args, "--json", input=input).stdout)

    def settings(self) -> Settings:
        get_settings.cache_clear()
        return Settings()


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cli]:
    # Only what the test sets: nothing of the caller's own PARTAGE_* configuration.
    for name in list(os.environ):
        if name.startswith("PARTAGE_") and name != "PARTAGE_TEST_DATABASE_URL":
            monkeypatch.delenv(name)
    database = new_database(tmp_path)
    env = {
        "PARTAGE_DATA_DIR": str(tmp_path / "var"),
        "PARTAGE_DATABASE_URL": database.url,
        "PARTAGE_ARGON2_TIME_COST": "1",
        "PARTAGE_ARGON2_MEMORY_KIB": "8192",
        "PARTAGE_ARGON2_PARALLELISM": "1",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    yield Cli(env, database.url, CliRunner())
    get_settings.cache_clear()
    database.drop()


def make_establishment(cli: Cli, domain: str = "CHU-POITIERS") -> dict[str, Any]:
    created: dict[str, Any] = cli.json(
        "establishments",
        "create",
        "--name",
        "CHU de Poitiers",
        "--domain",
        domain,
        "--kind",
        "university_hospital",
        "--finess",
        "860014208",
        "--city",
        "Poitiers",
    )
    return created


def test_every_command_has_help(cli: Cli) -> None:
    for group in ("", "db", "establishments", "accounts", "clients", "audit", "keys"):
        result = cli.run(*([group] if group else []), "--help")
        assert "Usage" in result.stdout
    assert "--no-serve" in cli.run("demo", "--help").stdout
    assert "--workers" in cli.run("serve", "--help").stdout


def test_db_upgrade_then_current(cli: Cli) -> None:
    assert "migrated" in cli.run("db", "upgrade").stdout
    assert "up to date" in cli.run("db", "upgrade").stdout
    cli.run("db", "current")


def test_establishments_create_and_list(cli: Cli) -> None:
    created = make_establishment(cli, domain="chu-poitiers")
    assert created["code"] == "CHU-POITIERS"
    assert created["kind"] == "university_hospital"
    assert created["finess"] == "860014208"
    assert created["territory"] == "GHT-86"
    assert created["patient_id_oid"].startswith("2.25.")
    listed = cli.json("establishments", "list")
    assert [e["code"] for e in listed] == ["CHU-POITIERS"]
    assert "CHU de Poitiers" in cli.run("establishments", "list").stdout


def test_duplicate_domain_is_refused(cli: Cli) -> None:
    make_establishment(cli)
    result = cli.run(
        "establishments", "create", "--name", "Autre", "--domain", "CHU-POITIERS", expect=1
    )
    assert "already exists" in result.stderr
    assert result.stdout == ""
    assert len(cli.json("establishments", "list")) == 1


def test_account_created_with_password_from_stdin(cli: Cli) -> None:
    make_establishment(cli)
    created = cli.json(
        "accounts",
        "create",
        "--login",
        "Claire.Dubois",
        "--name",
        "Dr Claire Dubois",
        "--profile",
        "hospital_physician",
        "--establishment",
        "chu-poitiers",
        "--email",
        "claire.dubois@chu-poitiers.example",
        "--password-stdin",
        input=STRONG_PASSWORD + "\n",
    )
    assert created["login"] == "claire.dubois"
    assert created["profile"] == "hospital_physician"
    assert created["establishment"] == "CHU-POITIERS"
    platform = Platform.create(cli.settings())
    try:
        with transaction(platform.sessions) as session:
            account = session.scalar(select(Account).where(Account.login == "claire.dubois"))
            assert account is not None
            assert platform.passwords.verify(account.password_hash, STRONG_PASSWORD)
    finally:
        platform.close()


def test_weak_password_and_bad_arguments_are_refused(cli: Cli) -> None:
    weak = cli.run(
        "accounts",
        "create",
        "--login",
        "jean.moreau",
        "--name",
        "Jean Moreau",
        "--profile",
        "patient",
        "--password-stdin",
        input="motdepasse123\n",
        expect=1,
    )
    assert "password refused" in weak.stderr
    cli.run(
        "accounts",
        "create",
        "--login",
        "jean.moreau",
        "--name",
        "Jean Moreau",
        "--profile",
        "wizard",
        "--password-stdin",
        input=STRONG_PASSWORD + "\n",
        expect=2,
    )
    unknown_domain = cli.run(
        "accounts",
        "create",
        "--login",
        "jean.moreau",
        "--name",
        "Jean Moreau",
        "--profile",
        "patient",
        "--establishment",
        "NOWHERE",
        "--password-stdin",
        input=STRONG_PASSWORD + "\n",
        expect=1,
    )
    assert "no establishment with domain NOWHERE" in unknown_domain.stderr
    assert cli.json("accounts", "list") == []


def test_password_prompted_twice(cli: Cli) -> None:
    typed = f"{STRONG_PASSWORD}\n{STRONG_PASSWORD}\n"
    result = cli.run(
        "accounts",
        "create",
        "--login",
        "jean.moreau",
        "--name",
        "Jean Moreau",
        "--profile",
        "patient",
        "--json",
        input=typed,
    )
    # The prompts went to stderr: stdout is the JSON alone.
    assert json.loads(result.stdout)["login"] == "jean.moreau"


def test_disable_enable_unlock_reset_mfa(cli: Cli) -> None:
    cli.run(
        "accounts",
        "create",
        "--login",
        "jean.moreau",
        "--name",
        "Jean Moreau",
        "--profile",
        "patient",
        "--password-stdin",
        input=STRONG_PASSWORD + "\n",
    )
    cli.run("accounts", "disable", "jean.moreau", "--reason", "départ")
    assert cli.json("accounts", "list")[0]["status"] == "disabled"
    cli.run("accounts", "enable", "Jean.Moreau")
    assert cli.json("accounts", "list")[0]["status"] == "active"
    cli.run("accounts", "unlock", "jean.moreau")
    cli.run("accounts", "reset-mfa", "jean.moreau")
    missing = cli.run("accounts", "disable", "nobody.here", expect=1)
    assert "no account with login nobody.here" in missing.stderr
    actions = [e["action"] for e in cli.json("audit", "tail", "--limit", "10")]
    assert actions[-4:] == [
        "account.disable",
        "account.enable",
        "account.unlock",
        "account.mfa_reset",
    ]


def test_client_secret_from_cli_obtains_a_token_until_revoked(cli: Cli) -> None:
    make_establishment(cli)
    created = cli.json(
        "clients",
        "create",
        "--name",
        "DPI du CHU",
        "--scopes",
        "system/*.rs system/DocumentReference.cruds",
        "--establishment",
        "CHU-POITIERS",
    )
    assert created["client_secret"]
    assert created["token_endpoint_auth_method"] == "client_secret_basic"
    assert created["scopes"] == "system/*.rs system/DocumentReference.cruds"
    assert "client_secret" not in cli.json("clients", "list")[0]
    assert (
        "shown only once"
        in cli.run("clients", "create", "--name", "PACS", "--scopes", "system/*.rs").stdout
    )

    settings = cli.settings()
    platform = Platform.create(settings)
    try:
        with TestClient(create_app(settings, platform=platform), base_url=settings.issuer) as http:

            def token() -> Any:
                return http.post(
                    "/oauth2/token",
                    data={"grant_type": "client_credentials", "scope": "system/Patient.rs"},
                    auth=(created["client_id"], created["client_secret"]),
                )

            granted = token()
            assert granted.status_code == 200, granted.text
            assert granted.json()["scope"] == "system/Patient.rs"
            cli.run("clients", "revoke", created["client_id"])
            refused = token()
            assert refused.status_code == 401
            assert refused.json()["error"] == "invalid_client"
    finally:
        platform.close()
    assert cli.run("clients", "revoke", "no-such-client", expect=1).stderr
    public = cli.json(
        "clients",
        "create",
        "--name",
        "Appli patient",
        "--scopes",
        "patient/*.rs openid",
        "--redirect-uri",
        "https://appli.example/callback",
        "--public",
    )
    assert public["client_secret"] is None
    assert public["token_endpoint_auth_method"] == "none"


def test_audit_verify_detects_tampering(cli: Cli) -> None:
    make_establishment(cli)
    result = cli.run("audit", "verify")
    assert "OK" in result.stdout
    assert cli.json("audit", "verify")["checked"] >= 1
    # Someone with the database's owner rights lifts the append-only guard and edits a row.
    engine = create_engine(cli.database_url)
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("ALTER TABLE audit_events DISABLE TRIGGER USER"))
        else:
            connection.execute(text("DROP TRIGGER audit_events_no_update"))
        connection.execute(text("UPDATE audit_events SET entity_id = 'AUTRE' WHERE seq = 1"))
    engine.dispose()
    broken = cli.run("audit", "verify", expect=1)
    assert "BROKEN at sequence 1" in broken.stderr


def test_keys_rotate(cli: Cli) -> None:
    cli.run("db", "upgrade")
    assert "New signing keys" in cli.run("keys", "rotate").stdout


def test_demo_is_idempotent_and_prints_every_profile(cli: Cli) -> None:
    first = cli.run("demo", "--no-serve", "--port", "8123", "--professionals", "200")
    for profile in Profile:
        assert profile.value in first.stdout
    assert "client_secret" in first.stdout
    assert "http://127.0.0.1:8123/" in first.stdout
    assert "loaded its directory" in first.stdout
    assert "PS_LibreAcces_Personne_activite_demo-200.txt (" in first.stdout
    assert first.stdout.count(", 0 rejected).") == 2  # the FINESS and RPPS extracts
    establishments = cli.json("establishments", "list")
    accounts = cli.json("accounts", "list")
    clients = cli.json("clients", "list")

    # The directory is not imported again, whatever the size asked for.
    second = cli.run("demo", "--no-serve")
    assert "nothing created" in second.stdout
    assert "PS_LibreAcces_Personne_activite_demo-200.txt already imported" in second.stdout
    assert "client_secret" not in second.stdout
    for profile in Profile:
        assert profile.value in second.stdout
    assert cli.json("establishments", "list") == establishments
    assert cli.json("accounts", "list") == accounts
    assert cli.json("clients", "list") == clients

    codes = {e["code"] for e in establishments}
    assert {"CHU-POITIERS", "GHNV"} <= codes
    assert {a["profile"] for a in accounts} == {p.value for p in Profile}
    assert all(a["is_demo"] for a in accounts)
    assert all(a["totp_enrolled"] for a in accounts if a["profile"] != "patient")
    assert [c["name"] for c in clients] == ["DPI du CHU de Poitiers"]
    cli.run("audit", "verify")


def test_demo_accounts_sign_in_with_the_printed_secret(cli: Cli) -> None:
    import pyotp

    from partage.demo import ACCOUNTS, DEMO_PASSWORD
    from partage.security.authn import totp_for

    cli.run("demo", "--no-serve", "--professionals", "20")
    platform = Platform.create(cli.settings())
    try:
        with transaction(platform.sessions) as session:
            for spec in ACCOUNTS:
                account = session.scalar(select(Account).where(Account.login == spec.login))
                assert account is not None
                assert platform.passwords.verify(account.password_hash, DEMO_PASSWORD)
                totp = totp_for(platform, account)
                if spec.totp_secret is None:
                    assert totp is None
                else:
                    assert totp is not None
                    assert totp.now() == pyotp.TOTP(spec.totp_secret).now()
            chu = session.scalar(select(Establishment).where(Establishment.code == "CHU-POITIERS"))
            assert chu is not None
            assert chu.finess is not None
            assert len(chu.finess) == 9
    finally:
        platform.close()


def test_production_refuses_demo_and_development_defaults(cli: Cli) -> None:
    production = {"PARTAGE_ENV": "production"}
    demo = cli.run("demo", "--no-serve", env=production, expect=1)
    assert "demo mode cannot run in production" in demo.stderr
    assert "PARTAGE_MASTER_KEY" in demo.stderr
    serve = cli.run("serve", env=production, expect=1)
    assert "PARTAGE_PUBLIC_URL must be an https:// address" in serve.stderr


def test_the_installed_program(cli: Cli) -> None:
    program = Path(sys.executable).parent / "partage"
    completed = subprocess.run(
        [
            str(program),
            "establishments",
            "create",
            "--name",
            "Groupe hospitalier Nord-Vienne",
            "--domain",
            "GHNV",
            "--city",
            "Châtellerault",
            "--json",
        ],
        env={**os.environ, **cli.env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    created = json.loads(completed.stdout)
    assert created["code"] == "GHNV"
    assert created["name"] == "Groupe hospitalier Nord-Vienne"
    assert created["city"] == "Châtellerault"


def test_purge_expired_runs_and_is_audited(cli: Cli) -> None:
    purged = cli.run("db", "purge-expired")
    assert "Deleted" in purged.stdout
    tail = cli.run("audit", "tail", "--limit", "1", "--json")
    assert "security.purge_expired" in tail.stdout
