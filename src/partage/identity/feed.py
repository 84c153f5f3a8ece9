"""The establishments' ADT feed (HL7 v2.5 over MLLP) into the master patient index.

A01, A04, A08, A28 and A31 create or update the sender's local identity (and match it);
A40 merges two ids of one domain. Each message is applied whole or not at all: acknowledged
AA only once it is committed, AE with the reason when refused — nothing half-done either way.

Messages are committed in groups (ADR 0009): the listener's threads hand their messages
over, and one of them at a time applies everything waiting in one transaction, in arrival
order, then answers each. A refused message does not take the others down with it: the
transaction is rolled back, the messages before it are applied again and committed, the
refused one is answered on its own, and the rest go on.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.orm import Session

from partage.audit.actions import Actor
from partage.db import transaction
from partage.identity.operations import do_merge_local
from partage.identity.service import (
    IdentityError,
    IdentityInput,
    checked_input,
    do_receive_identity,
)
from partage.interop.hl7.adt import AdtError, AdtMessage, ErrorCode, HierarchicDesignator
from partage.platform import Platform
from partage.security.models import Establishment

# At most this many messages share a transaction (one per connection waiting, at most).
MAX_GROUP = 64


@dataclass(eq=False)
class _Pending:
    message: AdtMessage
    done: bool = False
    error: Exception | None = None


@dataclass(frozen=True)
class _Prepared:
    message: AdtMessage
    establishment: Establishment
    actor: Actor
    value: IdentityInput


def _refusal(message: AdtMessage, error: IdentityError) -> AdtError:
    segment, field = ("MRG", 1) if message.merged_id is not None else ("PID", 3)
    return AdtError(
        ErrorCode.unknown_key if "unknown" in str(error) else ErrorCode.data_type,
        str(error),
        segment=segment,
        field=field,
    )


class AdtFeed:
    """The MLLP listener's handler: each message is answered once its group is committed."""

    def __init__(self, platform: Platform, *, max_group: int = MAX_GROUP) -> None:
        self._platform = platform
        self._max_group = max_group
        self._domains: dict[tuple[str, str], tuple[Establishment, Actor]] = {}
        self._lock = threading.Lock()
        self._queue: deque[_Pending] = deque()
        self._changed = threading.Condition()
        self._busy = False  # a thread is applying a group

    def __call__(self, message: AdtMessage) -> None:
        if message.patient is None:
            return  # an event we do not act on: acknowledged as accepted
        item = _Pending(message)
        with self._changed:
            self._queue.append(item)
        while True:
            with self._changed:
                while self._busy and not item.done:
                    self._changed.wait()
                if item.done:
                    break
                # No group is being applied: this thread applies what is waiting.
                self._busy = True
                count = min(len(self._queue), self._max_group)
                group = [self._queue.popleft() for _ in range(count)]
            try:
                self._apply_group(group)
            finally:
                with self._changed:
                    for pending in group:
                        if not pending.done:  # applying the group itself failed
                            pending.error = RuntimeError("the message was not applied")
                            pending.done = True
                    self._busy = False
                    self._changed.notify_all()
        if item.error is not None:
            raise item.error

    def apply(self, messages: Sequence[AdtMessage]) -> list[Exception | None]:
        """Apply these messages in order as one group, as the listener's messages waiting
        together are: each one's refusal (AdtError) or failure, or None once committed."""
        group = [_Pending(m) for m in messages if m.patient is not None]
        self._apply_group(group)
        errors = iter(pending.error for pending in group)
        return [next(errors) if m.patient is not None else None for m in messages]

    def _apply_group(self, group: list[_Pending]) -> None:
        """Apply `group` in as few transactions as its refusals allow; mark each done once
        its answer is known (AA: once committed)."""
        while group:
            if len(group) == 1:
                self._apply_alone(group[0])
                return
            applied: list[_Pending] = []
            failed: _Pending | None = None
            try:
                with transaction(self._platform.sessions) as session:
                    for pending in group:
                        failed = pending
                        try:
                            prepared = self._prepare(session, pending.message)
                        except AdtError as error:
                            # Refused before writing anything: the others carry on.
                            pending.error, pending.done, failed = error, True, None
                            continue
                        self._write(session, prepared)
                        applied.append(pending)
                        failed = None
            except Exception:
                rest = [p for p in group if not p.done and p not in applied and p is not failed]
                if failed is None:
                    # The commit failed: each on its own, so that each gets its answer.
                    for pending in applied:
                        self._apply_alone(pending)
                    group = rest
                    continue
                # Rolled back, nothing of the group stored: the messages before the refused
                # one again (they were accepted), the refused one alone (its error is its
                # answer), then the rest.
                self._apply_group(applied)
                self._apply_alone(failed)
                group = rest
                continue
            for pending in applied:
                pending.done = True
            return

    def _apply_alone(self, pending: _Pending) -> None:
        try:
            with transaction(self._platform.sessions) as session:
                self._write(session, self._prepare(session, pending.message))
        except Exception as error:
            pending.error = error
        pending.done = True

    def _prepare(self, session: Session, message: AdtMessage) -> _Prepared:
        """The checks that need no write: the domain, the traits (AdtError if refused)."""
        patient = message.patient
        assert patient is not None
        establishment, actor = self._domain(session, patient.ipp.authority)
        value = IdentityInput(
            traits=patient.traits,
            status=patient.status,
            attributes=frozenset(a.value for a in patient.attributes),
            ins_oid=patient.ins_oid,
        )
        try:
            value = checked_input(value)
        except IdentityError as error:
            raise _refusal(message, error) from None
        return _Prepared(message, establishment, actor, value)

    def _write(self, session: Session, prepared: _Prepared) -> None:
        message, establishment, actor = prepared.message, prepared.establishment, prepared.actor
        patient = message.patient
        assert patient is not None
        try:
            do_receive_identity(
                session,
                establishment=establishment,
                local_id=patient.ipp.value,
                value=prepared.value,
                actor=actor,
            )
            if message.merged_id is not None:
                do_merge_local(
                    session,
                    establishment_id=establishment.id,
                    surviving_local_id=patient.ipp.value,
                    absorbed_local_id=message.merged_id.value,
                    actor=actor,
                )
        except IdentityError as error:
            raise _refusal(message, error) from None

    def _domain(
        self, session: Session, authority: HierarchicDesignator
    ) -> tuple[Establishment, Actor]:
        key = (authority.universal_id, authority.namespace_id)
        with self._lock:
            found = self._domains.get(key)
        if found is not None:
            return found
        conditions: list[ColumnElement[bool]] = []
        if authority.universal_id:
            conditions.append(Establishment.patient_id_oid == authority.universal_id)
        if authority.namespace_id:
            conditions.append(Establishment.code == authority.namespace_id.strip().upper())
        establishment = (
            session.scalars(select(Establishment).where(or_(*conditions))).first()
            if conditions
            else None
        )
        if establishment is not None:
            # Kept apart from the session, whose end (a rollback expires what it holds) must
            # not touch it: only its id and code are read.
            session.expunge(establishment)
        if establishment is None or not establishment.active:
            raise AdtError(
                ErrorCode.unknown_key,
                "the assigning authority of the patient id is not a domain of this territory",
                segment="PID",
                field=3,
            )
        actor = Actor(kind="system", id=establishment.code, label=f"ADT {establishment.code}")
        with self._lock:
            self._domains[key] = (establishment, actor)
        return establishment, actor
