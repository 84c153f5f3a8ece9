"""`bulk.insert_rows`, the few-rows insert of busy write paths (COPY on PostgreSQL): the rows
as SQLAlchemy would have stored them, and the database's refusals as SQLAlchemy raises them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, cast

import pytest
from sqlalchemy import Table, select
from sqlalchemy.exc import DataError, IntegrityError, StatementError

from partage.audit.models import AuditEvent
from partage.bulk import insert_rows
from partage.db import transaction
from partage.platform import Platform

EVENTS = cast(Table, AuditEvent.__table__)


def _event(chain: str, seq: int, **changes: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "chain": chain,
        "seq": seq,
        "occurred_at": datetime(2026, 12, 5, 9, 30, tzinfo=timezone(timedelta(hours=1))),
        "action": "test.insert",
        "outcome": "ok",
        "actor_kind": "system",
        "actor_id": None,
        "actor_label": "Été ñ ✓",
        "entity_type": None,
        "entity_id": None,
        "person_id": None,
        "basis": None,
        "ip": None,
        "request_id": None,
        "detail": {"nested": {"list": [1, "deux", None]}, "accent": "déjà"},
        "prev_hash": "0" * 64,
        "hash": "1" * 64,
    }
    row.update(changes)
    return row


def test_rows_are_stored_as_sqlalchemy_would(platform: Platform) -> None:
    chain = f"t-{uuid.uuid4().hex[:12]}"
    with transaction(platform.sessions) as session:
        insert_rows(
            session, EVENTS, [_event(chain, 1), _event(chain, 2, detail={}), _event(chain, 3)]
        )
    with platform.read_sessions() as session:
        rows = session.scalars(
            select(AuditEvent).where(AuditEvent.chain == chain).order_by(AuditEvent.seq)
        ).all()
    assert [r.seq for r in rows] == [1, 2, 3]
    assert rows[0].occurred_at == datetime(2026, 12, 5, 8, 30, tzinfo=UTC)
    assert rows[0].actor_label == "Été ñ ✓"
    assert rows[0].detail == {"nested": {"list": [1, "deux", None]}, "accent": "déjà"}
    assert rows[1].detail == {}


def test_refusals_are_sqlalchemy_errors_and_roll_back(platform: Platform) -> None:
    chain = f"t-{uuid.uuid4().hex[:12]}"
    with transaction(platform.sessions) as session:
        insert_rows(session, EVENTS, [_event(chain, 1)])
    with pytest.raises(IntegrityError), transaction(platform.sessions) as session:
        insert_rows(session, EVENTS, [_event(chain, 2), _event(chain, 3), _event(chain, 1)])
    naive = datetime(2026, 12, 5, 9, 30)  # refused, as the column type refuses it
    with pytest.raises(StatementError), transaction(platform.sessions) as session:
        insert_rows(session, EVENTS, [_event(chain, n, occurred_at=naive) for n in (5, 6, 7)])
    if platform.engine.dialect.name == "postgresql":
        with pytest.raises(DataError), transaction(platform.sessions) as session:
            rows = [_event(chain, n, actor_label="a\x00b") for n in (8, 9, 10)]
            insert_rows(session, EVENTS, rows)
    with platform.read_sessions() as session:
        seqs = session.scalars(select(AuditEvent.seq).where(AuditEvent.chain == chain)).all()
    assert seqs == [1]
