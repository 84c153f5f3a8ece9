"""The establishments' ADT feed (HL7 v2.5 over MLLP) into the master patient index.

A01, A04, A08, A28 and A31 create or update the sender's local identity (and match it);
A40 merges two ids of one domain. Each message is applied whole or not at all: acknowledged
AA only once it is committed, AE with the reason when refused — nothing half-done either way.

Messages are committed in groups (ADR 0009, `group_commit.GroupCommitter`): the listener's
threads hand their messages over, and one of them at a time applies everything waiting in
one transaction, in arrival order, then answers each. A refused message does not take the
others down with it: the transaction is rolled back, the messages before it are applied
again and committed, the refused one is answered on its own, and the rest go on.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.orm import Session

from partage.audit.actions import Actor
from partage.group_commit import GroupCommitter
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


@dataclass(frozen=True)
class _Prepared:
    message: AdtMessage
    establishment: Establishment
    actor: Actor
    value: IdentityInput


def _exception(error: BaseException | None) -> Exception | None:
    if error is None or isinstance(error, Exception):
        return error
    raise error  # KeyboardInterrupt and the like are not answers


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
        self._domains: dict[tuple[str, str], tuple[Establishment, Actor]] = {}
        self._lock = threading.Lock()
        self._committer: GroupCommitter[AdtMessage, AdtError | None] = GroupCommitter(
            platform.sessions, self._apply, max_group=max_group
        )

    def __call__(self, message: AdtMessage) -> None:
        if message.patient is None:
            return  # an event we do not act on: acknowledged as accepted
        refusal = self._committer.submit(message)
        if refusal is not None:
            raise refusal

    def apply(self, messages: Sequence[AdtMessage]) -> list[Exception | None]:
        """Apply these messages in order as one group, as the listener's messages waiting
        together are: each one's refusal (AdtError) or failure, or None once committed."""
        acted = [m for m in messages if m.patient is not None]
        outcomes = iter(self._committer.apply_group(acted))
        answers: list[Exception | None] = []
        for message in messages:
            if message.patient is None:
                answers.append(None)
                continue
            refusal, error = next(outcomes)
            answers.append(refusal if refusal is not None else _exception(error))
        return answers

    def _apply(self, session: Session, message: AdtMessage) -> AdtError | None:
        """A message refused before it writes (unknown domain, invalid traits) is answered
        without failing the group it is in; one refused after writing fails it (the group
        committer then applies the others again without it)."""
        try:
            prepared = self._prepare(session, message)
        except AdtError as refusal:
            return refusal
        self._write(session, prepared)
        return None

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
