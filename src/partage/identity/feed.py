"""The establishments' ADT feed (HL7 v2.5 over MLLP) into the master patient index.

A01, A04, A08, A28 and A31 create or update the sender's local identity (and match it);
A40 merges two ids of one domain. Each message is one transaction: acknowledged AA only
once it is stored, AE with the reason when refused — nothing half-done either way.
"""

from __future__ import annotations

import threading

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.orm import Session

from partage.audit.actions import Actor
from partage.db import transaction
from partage.identity.operations import do_merge_local
from partage.identity.service import IdentityError, IdentityInput, do_receive_identity
from partage.interop.hl7.adt import AdtError, AdtMessage, ErrorCode, HierarchicDesignator
from partage.platform import Platform
from partage.security.models import Establishment


class AdtFeed:
    """The MLLP listener's handler: one message, one transaction."""

    def __init__(self, platform: Platform) -> None:
        self._platform = platform
        self._domains: dict[tuple[str, str], tuple[Establishment, Actor]] = {}
        self._lock = threading.Lock()

    def __call__(self, message: AdtMessage) -> None:
        patient = message.patient
        if patient is None:
            return  # an event we do not act on: acknowledged as accepted
        with transaction(self._platform.sessions) as session:
            establishment, actor = self._domain(session, patient.ipp.authority)
            establishment = session.merge(establishment, load=False)
            value = IdentityInput(
                traits=patient.traits,
                status=patient.status,
                attributes=frozenset(a.value for a in patient.attributes),
                ins_oid=patient.ins_oid,
            )
            # No savepoint: a refusal raises out of the transaction, which rolls it all back.
            try:
                do_receive_identity(
                    session,
                    establishment=establishment,
                    local_id=patient.ipp.value,
                    value=value,
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
                where = ("MRG", 1) if message.merged_id is not None else ("PID", 3)
                raise AdtError(
                    ErrorCode.unknown_key if "unknown" in str(error) else ErrorCode.data_type,
                    str(error),
                    segment=where[0],
                    field=where[1],
                ) from None

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
