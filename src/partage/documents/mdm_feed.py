"""The establishments' MDM feed (HL7 v2.5 MDM^T02 / MDM^T10 over MLLP) into the document
registry: one deposit per message, acknowledged AA once committed, AE with the reason when
refused, nothing stored either way but the whole document.

The depositor is the establishment the message comes from: MSH-4 (its code or the OID of
its patient ids), else the assigning authority of the patient id in PID-3, resolved the way
the ADT feed resolves domains. It deposits as its interface, a system principal of that
establishment, under the same rules as its FHIR client: its own patients only, authors
declared must be in the directory.

A message sent again (same sending application and facility, same control id: an interface
engine that did not get the first ACK) is answered AA with a note and stores nothing: the
submission's uniqueId is derived from those, so the registry knows it. An AE would have the
engine park or resend a message that was in fact applied.
"""

from __future__ import annotations

import logging

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from partage.access.decision import Action, NotFound, require
from partage.db import transaction
from partage.documents.deposit import deposit
from partage.documents.filing_writes import record_refused_deposit
from partage.documents.models import SubmissionSet
from partage.documents.submission import SubmissionError
from partage.interop.hl7.adt import AdtError, ErrorCode, HierarchicDesignator
from partage.interop.hl7.mdm import MdmMessage, refusal, submission_of
from partage.platform import Platform
from partage.security.models import Establishment
from partage.security.principal import Principal

logger = logging.getLogger(__name__)

DUPLICATE_NOTE = "duplicate of a message already received: nothing stored again"


class MdmFeed:
    """The MLLP listener's MDM handler: returns the AA's note, raises `AdtError` to refuse."""

    def __init__(self, platform: Platform) -> None:
        self._platform = platform

    def __call__(self, message: MdmMessage) -> str:
        with transaction(self._platform.sessions) as session:
            establishment = self._depositor(session, message)
            patient_domain_oid = self._patient_domain(session, message.patient.authority)
            principal = Principal(
                kind="client",
                label=f"MDM {establishment.code}",
                establishment_id=establishment.id,
            )
            submission = submission_of(
                message,
                establishment_oid=establishment.patient_id_oid,
                patient_domain_oid=patient_domain_oid,
            )
            if _received(session, submission.unique_id):
                return DUPLICATE_NOTE
            try:
                require(
                    session, principal, Action.document_deposit, entity_type="DocumentReference"
                )
            except NotFound:
                raise AdtError(
                    ErrorCode.unknown_key, "this establishment may not deposit documents"
                ) from None
        try:
            deposit(
                self._platform.sessions,
                self._platform.repository,
                principal=principal,
                submission=submission,
            )
        except SubmissionError as error:
            # A copy received meanwhile on another connection may be seen through any of the
            # registry's duplicate checks (its document committed before its submission set
            # is visible, under read committed): this message's own id decides.
            if error.code == "duplicate" and self._received_now(submission.unique_id):
                return DUPLICATE_NOTE
            self._refused(principal, message, error)
            raise refusal(error) from None
        except IntegrityError:
            # Two copies committed at once on two connections: the loser is the duplicate.
            if self._received_now(submission.unique_id):
                return DUPLICATE_NOTE
            raise
        return ""

    def _received_now(self, unique_id: str) -> bool:
        with self._platform.read_sessions() as session:
            return _received(session, unique_id)

    def _depositor(self, session: Session, message: MdmMessage) -> Establishment:
        found = _establishment(session, message.header.sending_facility)
        if found is None:
            found = _establishment(session, message.patient.authority)
        if found is None or not found.active:
            raise AdtError(
                ErrorCode.unknown_key,
                "neither the sending facility (MSH-4) nor the patient id's assigning authority "
                "(PID-3) names an establishment of this territory",
                segment="MSH",
                field=4,
            )
        return found

    @staticmethod
    def _patient_domain(session: Session, authority: HierarchicDesignator) -> str:
        if authority.universal_id:
            return authority.universal_id
        domain = _establishment(session, authority)
        if domain is None:
            raise AdtError(
                ErrorCode.unknown_key,
                "the assigning authority of the patient id is not a domain of this territory",
                segment="PID",
                field=3,
            )
        return domain.patient_id_oid

    def _refused(self, principal: Principal, message: MdmMessage, error: SubmissionError) -> None:
        with transaction(self._platform.sessions) as session:
            record_refused_deposit(
                session, principal, error, channel="mdm", control_id=message.control_id[:64]
            )


def _establishment(session: Session, designator: HierarchicDesignator) -> Establishment | None:
    conditions: list[ColumnElement[bool]] = []
    if designator.universal_id:
        conditions.append(Establishment.patient_id_oid == designator.universal_id)
    if designator.namespace_id:
        conditions.append(Establishment.code == designator.namespace_id.strip().upper())
    if not conditions:
        return None
    return session.scalars(select(Establishment).where(or_(*conditions))).first()


def _received(session: Session, unique_id: str) -> bool:
    found = session.scalar(select(SubmissionSet.id).where(SubmissionSet.unique_id == unique_id))
    return found is not None
