"""The audit trail: chained, append-only, and tampering is found by `partage audit verify`."""

from __future__ import annotations

import itertools

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError
from typer.testing import CliRunner

from partage.audit.actions import Actor, record
from partage.audit.models import AuditEvent
from partage.audit.service import verify_chain
from partage.cli.main import app as cli
from partage.db import transaction
from partage.platform import Platform

ACTOR = Actor(kind="system", label="test")


def _write_events(platform: Platform, count: int) -> None:
    for n in range(count):
        with transaction(platform.sessions) as session:
            record(
                session,
                actor=ACTOR,
                action="test.event",
                entity_type="Thing",
                entity_id=str(n),
                detail={"n": n, "texte": "élément"},
            )


def _verify(platform: Platform) -> tuple[bool, int | None, int]:
    with transaction(platform.read_sessions) as session:
        report = verify_chain(session, key=platform.audit_key)
    return report.ok, report.broken_at, report.checked


def _bypass_append_only(platform: Platform, statement: str) -> None:
    """What an attacker with the database's owner rights could do."""
    with platform.engine.begin() as connection:
        if platform.settings.is_sqlite:
            connection.exec_driver_sql("DROP TRIGGER IF EXISTS audit_events_no_update")
            connection.exec_driver_sql("DROP TRIGGER IF EXISTS audit_events_no_delete")
        else:
            connection.exec_driver_sql("ALTER TABLE audit_events DISABLE TRIGGER USER")
        connection.execute(text(statement))


def _cli_verify(platform: Platform) -> tuple[int, str]:
    env = {
        "PARTAGE_DATA_DIR": str(platform.settings.data_dir),
        "PARTAGE_DATABASE_URL": platform.settings.resolved_database_url,
    }
    from partage.config import get_settings

    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(cli, ["audit", "verify"], env=env)
    finally:
        get_settings.cache_clear()
    return result.exit_code, result.output


def test_events_chain_and_verify(fresh_platform: Platform) -> None:
    _write_events(fresh_platform, 5)
    ok, broken_at, checked = _verify(fresh_platform)
    assert ok and broken_at is None and checked == 5
    with transaction(fresh_platform.read_sessions) as session:
        rows = list(session.scalars(select(AuditEvent).order_by(AuditEvent.seq)))
    assert [r.seq for r in rows] == [1, 2, 3, 4, 5]
    assert all(later.prev_hash == earlier.hash for earlier, later in itertools.pairwise(rows))
    assert rows[0].detail == {"n": 0, "texte": "élément"}


def test_rolled_back_actions_leave_no_audit_row(fresh_platform: Platform) -> None:
    with pytest.raises(RuntimeError), transaction(fresh_platform.sessions) as session:
        record(session, actor=ACTOR, action="test.rolled_back")
        raise RuntimeError("the action failed")
    _write_events(fresh_platform, 1)
    with transaction(fresh_platform.read_sessions) as session:
        actions = list(session.scalars(select(AuditEvent.action)))
    assert actions == ["test.event"]
    assert _verify(fresh_platform)[0]


def test_the_trail_is_append_only(fresh_platform: Platform) -> None:
    _write_events(fresh_platform, 2)
    for statement in (
        "UPDATE audit_events SET action = 'x' WHERE seq = 1",
        "DELETE FROM audit_events WHERE seq = 1",
    ):
        with pytest.raises(DBAPIError), fresh_platform.engine.begin() as connection:
            connection.execute(text(statement))
    assert _verify(fresh_platform)[0]


def test_a_modified_row_is_detected_by_the_command(fresh_platform: Platform) -> None:
    _write_events(fresh_platform, 6)
    code, output = _cli_verify(fresh_platform)
    assert code == 0, output
    _bypass_append_only(
        fresh_platform, "UPDATE audit_events SET entity_id = 'forged' WHERE seq = 4"
    )
    assert _verify(fresh_platform)[:2] == (False, 4)
    code, output = _cli_verify(fresh_platform)
    assert code == 1
    assert "4" in output


def test_a_deleted_row_is_detected(fresh_platform: Platform) -> None:
    _write_events(fresh_platform, 5)
    _bypass_append_only(fresh_platform, "DELETE FROM audit_events WHERE seq = 3")
    assert _verify(fresh_platform)[:2] == (False, 3)


def test_a_truncated_tail_is_detected(fresh_platform: Platform) -> None:
    _write_events(fresh_platform, 5)
    _bypass_append_only(fresh_platform, "DELETE FROM audit_events WHERE seq = 5")
    ok, broken_at, _ = _verify(fresh_platform)
    assert not ok and broken_at == 5


def test_a_recomputed_plain_hash_does_not_pass(fresh_platform: Platform) -> None:
    """The chain is keyed: rewriting a row and its hash without the key is still caught."""
    import hashlib

    _write_events(fresh_platform, 3)
    forged = hashlib.sha256(b"forged").hexdigest()
    _bypass_append_only(
        fresh_platform, f"UPDATE audit_events SET action = 'x', hash = '{forged}' WHERE seq = 3"
    )
    assert _verify(fresh_platform)[:2] == (False, 3)
