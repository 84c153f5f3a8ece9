"""Writing the audit trail.

`record()` queues an event on the session; the queue is written, chained, just before the
session commits — in the same transaction as the action it records, holding the chain lock
only for the last moment of the transaction. A rolled-back action leaves no audit row;
denials that end a request in an error are written with `record_now()` in their own
transaction so that they survive the rollback of the request.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import event, select
from sqlalchemy.orm import Session, sessionmaker

from partage.audit.models import AuditChainHead, AuditEvent
from partage.db import transaction, utcnow
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
class _Pending:
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


def record(
    session: Session,
    *,
    actor: Actor,
    action: str,
    outcome: str = "success",
    entity_type: str | None = None,
    entity_id: str | None = None,
    person_id: str | None = None,
    basis: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    if AUDIT_KEY_INFO not in session.info:
        raise RuntimeError("this session cannot write the audit trail (no audit key)")
    session.info.setdefault(_PENDING, []).append(
        _Pending(
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
    )


def record_now(sessions: sessionmaker[Session], **kwargs: Any) -> None:
    """Record in a transaction of its own (for events whose request will fail)."""
    with transaction(sessions) as session:
        record(session, **kwargs)


def canonical_payload(row: AuditEvent) -> bytes:
    fields = {
        "chain": row.chain,
        "seq": row.seq,
        "occurred_at": row.occurred_at.isoformat(timespec="microseconds"),
        "action": row.action,
        "outcome": row.outcome,
        "actor_kind": row.actor_kind,
        "actor_id": row.actor_id,
        "actor_label": row.actor_label,
        "entity_type": row.entity_type,
        "entity_id": row.entity_id,
        "person_id": row.person_id,
        "basis": row.basis,
        "ip": row.ip,
        "request_id": row.request_id,
        "detail": row.detail,
        "prev_hash": row.prev_hash,
    }
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def chain_hash(key: bytes, row: AuditEvent) -> str:
    return hmac.new(key, canonical_payload(row), hashlib.sha256).hexdigest()


@event.listens_for(Session, "before_commit")
def _write_pending(session: Session) -> None:
    pending: list[_Pending] | None = session.info.pop(_PENDING, None)
    if not pending:
        return
    key: bytes = session.info[AUDIT_KEY_INFO]
    head = session.execute(
        select(AuditChainHead).where(AuditChainHead.chain == MAIN_CHAIN).with_for_update()
    ).scalar_one_or_none()
    if head is None:
        head = AuditChainHead(chain=MAIN_CHAIN, last_seq=0, last_hash=GENESIS_HASH)
        session.add(head)
    for item in pending:
        row = AuditEvent(
            chain=MAIN_CHAIN,
            seq=head.last_seq + 1,
            occurred_at=item.occurred_at,
            action=item.action,
            outcome=item.outcome,
            actor_kind=item.actor.kind,
            actor_id=item.actor.id,
            actor_label=item.actor.label,
            entity_type=item.entity_type,
            entity_id=item.entity_id,
            person_id=item.person_id,
            basis=item.basis,
            ip=item.ip,
            request_id=item.request_id,
            detail=item.detail,
            prev_hash=head.last_hash,
            hash="",
        )
        row.hash = chain_hash(key, row)
        session.add(row)
        head.last_seq, head.last_hash = row.seq, row.hash
    session.flush()


@event.listens_for(Session, "after_soft_rollback")
def _drop_pending(session: Session, _previous_transaction: Any) -> None:
    session.info.pop(_PENDING, None)
