"""Writing the audit trail.

`record()` queues an event on the session; the queue is written, chained, just before the
session commits — in the same transaction as the action it records, holding the chain lock
only for the last moment of the transaction. A rolled-back action leaves no audit row.
Events of actions that write nothing else (a token handed to a system) go through the
group-committing `AuditBatcher` instead (batch.py).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, event, insert, select, update
from sqlalchemy.orm import Session

from partage.audit.models import AuditChainHead, AuditEvent
from partage.bulk import insert_rows
from partage.db import utcnow
from partage.ops.context import client_ip_var, request_id_var

MAIN_CHAIN = "main"
GENESIS_HASH = "0" * 64
AUDIT_KEY_INFO = "audit_key"
_PENDING = "audit_pending"


@dataclass(frozen=True)
class Actor:
    """Who did it, as the trail shows it. Never carries a secret or patient data."""

    kind: str  # account | client | system | anonymous
    id: str | None = None
    label: str | None = None


SYSTEM_ACTOR = Actor(kind="system", id=None, label="partage")
ANONYMOUS_ACTOR = Actor(kind="anonymous")


@dataclass
class AuditEntry:
    """An event to be chained, captured with its request context where it happened."""

    occurred_at: datetime
    action: str
    outcome: str
    actor: Actor
    entity_type: str | None
    entity_id: str | None
    person_id: str | None
    basis: str | None
    ip: str | None
    request_id: str | None
    detail: dict[str, Any] = field(default_factory=dict)


def new_entry(
    *,
    actor: Actor,
    action: str,
    outcome: str = "success",
    entity_type: str | None = None,
    entity_id: str | None = None,
    person_id: str | None = None,
    basis: str | None = None,
    detail: dict[str, Any] | None = None,
) -> AuditEntry:
    return AuditEntry(
        occurred_at=utcnow(),
        action=action,
        outcome=outcome,
        actor=actor,
        entity_type=entity_type,
        entity_id=entity_id,
        person_id=person_id,
        basis=basis,
        ip=client_ip_var.get(),
        request_id=request_id_var.get(),
        detail=dict(detail or {}),
    )


def queue_entries(session: Session, entries: list[AuditEntry]) -> None:
    """Chain these entries when the session commits, in its transaction."""
    if AUDIT_KEY_INFO not in session.info:
        raise RuntimeError("this session cannot write the audit trail (no audit key)")
    session.info.setdefault(_PENDING, []).extend(entries)


def record(session: Session, **event: Any) -> None:
    """Record an event in the session's transaction (see `new_entry` for the fields)."""
    queue_entries(session, [new_entry(**event)])


_HASHED_FIELDS = (
    "chain", "seq", "occurred_at", "action", "outcome", "actor_kind", "actor_id",
    "actor_label", "entity_type", "entity_id", "person_id", "basis", "ip", "request_id",
    "detail", "prev_hash",
)  # fmt: skip


def canonical_payload(fields: Mapping[str, Any]) -> bytes:
    """The bytes a row's hash covers: every field but the hash, in a fixed JSON form."""
    payload = {name: fields[name] for name in _HASHED_FIELDS}
    payload["occurred_at"] = fields["occurred_at"].isoformat(timespec="microseconds")
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def chain_hash(key: bytes, fields: Mapping[str, Any]) -> str:
    return hmac.new(key, canonical_payload(fields), hashlib.sha256).hexdigest()


def row_fields(row: AuditEvent) -> dict[str, Any]:
    return {name: getattr(row, name) for name in _HASHED_FIELDS}


_HEAD = cast(Table, AuditChainHead.__table__)
_EVENTS = cast(Table, AuditEvent.__table__)
# Built once: this runs at the end of every write transaction.
_SELECT_HEAD = (
    select(_HEAD.c.last_seq, _HEAD.c.last_hash)
    .where(_HEAD.c.chain == bindparam("chain"))
    .with_for_update()
)
_INSERT_HEAD = insert(_HEAD)
_UPDATE_HEAD = (
    update(_HEAD)
    .where(_HEAD.c.chain == bindparam("head_chain"))
    .values(last_seq=bindparam("new_seq"), last_hash=bindparam("new_hash"))
)


@event.listens_for(Session, "before_commit")
def _write_pending(session: Session) -> None:
    pending: list[AuditEntry] | None = session.info.pop(_PENDING, None)
    if not pending:
        return
    key: bytes = session.info[AUDIT_KEY_INFO]
    # Core statements on the session's connection: the ORM's handling costs more than they do.
    connection = session.connection()
    head = connection.execute(_SELECT_HEAD, {"chain": MAIN_CHAIN}).first()
    if head is None:
        last_seq, last_hash = 0, GENESIS_HASH
        connection.execute(
            _INSERT_HEAD, {"chain": MAIN_CHAIN, "last_seq": 0, "last_hash": GENESIS_HASH}
        )
    else:
        last_seq, last_hash = head
    rows: list[dict[str, Any]] = []
    for item in pending:
        row: dict[str, Any] = {
            "chain": MAIN_CHAIN,
            "seq": last_seq + 1,
            "occurred_at": item.occurred_at,
            "action": item.action,
            "outcome": item.outcome,
            "actor_kind": item.actor.kind,
            "actor_id": item.actor.id,
            "actor_label": item.actor.label,
            "entity_type": item.entity_type,
            "entity_id": item.entity_id,
            "person_id": item.person_id,
            "basis": item.basis,
            "ip": item.ip,
            "request_id": item.request_id,
            "detail": item.detail,
            "prev_hash": last_hash,
        }
        row["hash"] = chain_hash(key, row)
        rows.append(row)
        last_seq, last_hash = row["seq"], row["hash"]
    insert_rows(session, _EVENTS, rows)
    connection.execute(
        _UPDATE_HEAD, {"head_chain": MAIN_CHAIN, "new_seq": last_seq, "new_hash": last_hash}
    )


@event.listens_for(Session, "after_soft_rollback")
def _drop_pending(session: Session, _previous_transaction: Any) -> None:
    session.info.pop(_PENDING, None)
