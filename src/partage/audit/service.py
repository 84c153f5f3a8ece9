"""Reading and checking the audit trail."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from partage.audit.actions import GENESIS_HASH, MAIN_CHAIN, chain_hash, row_fields
from partage.audit.models import AuditChainHead, AuditEvent

_PAGE = 2000


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    checked: int
    broken_at: int | None = None
    reason: str | None = None


def verify_chain(session: Session, *, key: bytes, chain: str = MAIN_CHAIN) -> ChainReport:
    """Recompute every link; report the first row whose content or linkage was altered.

    The head is read first and only rows up to it are checked, so a chain that keeps
    growing during the check (a live server) is verified as it stood at the start.
    """
    head = session.get(AuditChainHead, chain)
    last_seq = head.last_seq if head else 0
    last_hash = head.last_hash if head else GENESIS_HASH
    expected_prev = GENESIS_HASH
    expected_seq = 1
    checked = 0
    for row in _rows_up_to(session, chain, last_seq):
        if row.seq != expected_seq:
            return ChainReport(False, checked, expected_seq, f"row {expected_seq} is missing")
        if row.prev_hash != expected_prev:
            return ChainReport(False, checked, row.seq, "link to the previous row is broken")
        if chain_hash(key, row_fields(row)) != row.hash:
            return ChainReport(False, checked, row.seq, "row content does not match its hash")
        expected_prev = row.hash
        expected_seq += 1
        checked += 1
    if last_seq != checked:
        return ChainReport(
            False, checked, checked + 1, f"chain head says {last_seq} rows, found {checked}"
        )
    if last_hash != expected_prev:
        return ChainReport(False, checked, last_seq, "chain head does not match the last row")
    return ChainReport(True, checked)


def _rows_up_to(session: Session, chain: str, last_seq: int) -> Iterator[AuditEvent]:
    """The chain in seq order, page by page (constant memory, no server-side cursor)."""
    after = 0
    while True:
        page = list(
            session.scalars(
                select(AuditEvent)
                .where(AuditEvent.chain == chain, AuditEvent.seq > after)
                .where(AuditEvent.seq <= last_seq)
                .order_by(AuditEvent.seq)
                .limit(_PAGE)
            )
        )
        yield from page
        if len(page) < _PAGE:
            return
        after = page[-1].seq
        session.expunge_all()


def recent_events(session: Session, *, limit: int = 100) -> list[AuditEvent]:
    return list(
        session.scalars(
            select(AuditEvent)
            .where(AuditEvent.chain == MAIN_CHAIN)
            .order_by(AuditEvent.seq.desc())
            .limit(limit)
        )
    )
