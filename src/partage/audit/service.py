"""Reading and checking the audit trail."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from partage.audit.actions import GENESIS_HASH, MAIN_CHAIN, chain_hash
from partage.audit.models import AuditChainHead, AuditEvent


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    checked: int
    broken_at: int | None = None
    reason: str | None = None


def verify_chain(session: Session, *, key: bytes, chain: str = MAIN_CHAIN) -> ChainReport:
    """Recompute every link; report the first row whose content or linkage was altered."""
    expected_prev = GENESIS_HASH
    expected_seq = 1
    checked = 0
    rows = session.scalars(
        select(AuditEvent).where(AuditEvent.chain == chain).order_by(AuditEvent.seq)
    ).yield_per(2000)
    for row in rows:
        if row.seq != expected_seq:
            return ChainReport(False, checked, expected_seq, f"row {expected_seq} is missing")
        if row.prev_hash != expected_prev:
            return ChainReport(False, checked, row.seq, "link to the previous row is broken")
        if chain_hash(key, row) != row.hash:
            return ChainReport(False, checked, row.seq, "row content does not match its hash")
        expected_prev = row.hash
        expected_seq += 1
        checked += 1
    head = session.get(AuditChainHead, chain)
    last_seq = head.last_seq if head else 0
    last_hash = head.last_hash if head else GENESIS_HASH
    if last_seq != checked or last_hash != expected_prev:
        return ChainReport(
            False, checked, checked + 1, f"chain head says {last_seq} rows, found {checked}"
        )
    return ChainReport(True, checked)


def recent_events(session: Session, *, limit: int = 100) -> list[AuditEvent]:
    return list(
        session.scalars(
            select(AuditEvent)
            .where(AuditEvent.chain == MAIN_CHAIN)
            .order_by(AuditEvent.seq.desc())
            .limit(limit)
        )
    )
