"""The one access decision. Deny by default.

Every read or write that needs a permission asks `decide()`; routes call `require()`, which
turns a denial into `NotFound` — the same answer as for something that does not exist — and
writes the denial to the audit trail. The rule set is provisional: the security directory's
administration only. Patient data is denied to everyone until its rules are written.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy.orm import Session

from partage.audit.actions import record
from partage.security.models import Profile
from partage.security.principal import Principal


class Action(StrEnum):
    establishment_read = "establishment.read"
    establishment_manage = "establishment.manage"
    account_read = "account.read"
    account_manage = "account.manage"
    client_read = "client.read"
    client_manage = "client.manage"
    audit_read = "audit.read"
    patient_data_read = "patient_data.read"
    directory_read = "directory.read"
    directory_admin = "directory.admin"
    identity_read = "identity.read"
    identity_manage = "identity.manage"
    document_read = "document.read"
    document_deposit = "document.deposit"


class Basis(StrEnum):
    operator = "operator"
    territory_admin = "territory_admin"
    establishment_admin = "establishment_admin"
    professional = "professional"
    territory_system = "territory_system"
    identity_vigilance = "identity_vigilance"
    care_establishment = "care_establishment"
    author = "author"
    patient = "patient"


@dataclass(frozen=True)
class Decision:
    allowed: bool
    basis: Basis | None
    reason: str

    @property
    def basis_code(self) -> str | None:
        """The basis as the audit trail records it."""
        return self.basis.value if self.basis else None


class NotFound(Exception):
    """Does not exist, or is not yours to see: callers cannot tell which."""


_DENY_UNKNOWN = Decision(False, None, "no rule allows this")

_TERRITORY_ADMIN_ACTIONS = frozenset(
    {
        Action.establishment_read,
        Action.establishment_manage,
        Action.account_read,
        Action.account_manage,
        Action.client_read,
        Action.client_manage,
        Action.audit_read,
        Action.directory_admin,
    }
)
_ESTABLISHMENT_ADMIN_ACTIONS = frozenset(
    {Action.account_read, Action.account_manage, Action.client_read, Action.establishment_read}
)


def decide(
    principal: Principal,
    action: Action,
    *,
    establishment_id: uuid.UUID | None = None,
    target_profile: str | None = None,
) -> Decision:
    """Allow or deny, with the legal or organisational basis of an allowance.

    `target_profile` is the profile of the account an account action creates or changes.
    """
    if action is Action.patient_data_read:
        return Decision(False, None, "no patient-data rule is in force yet")
    if action in (Action.document_read, Action.document_deposit):
        # Documents are decided person by person (`decide_record`, `decide_deposit`); at the
        # level of the resource type only the kinds of callers that could ever be allowed pass.
        return _document_callers(principal, action)
    if principal.kind == "operator":
        return Decision(True, Basis.operator, "operator at the server's command line")
    if action is Action.directory_read:
        return _directory_read(principal)
    if action in (Action.identity_read, Action.identity_manage):
        return _identity(principal, action)
    if principal.kind != "account" or principal.profile is None:
        return _DENY_UNKNOWN
    if principal.profile == Profile.territory_admin and action in _TERRITORY_ADMIN_ACTIONS:
        return Decision(True, Basis.territory_admin, "territory administrator")
    if principal.profile == Profile.establishment_admin and action in _ESTABLISHMENT_ADMIN_ACTIONS:
        if target_profile == Profile.territory_admin:
            # No climbing above one's own rights: territory administrators are the territory's.
            return Decision(False, None, "a territory administrator is managed by the territory")
        # Only within their own establishment; a listing is narrowed by `scope_establishment`.
        if establishment_id is None or establishment_id == principal.establishment_id:
            return Decision(True, Basis.establishment_admin, "administrator of the establishment")
        return Decision(False, None, "another establishment")
    return _DENY_UNKNOWN


def _directory_read(principal: Principal) -> Decision:
    # The directory is public information (the national extracts are open data), but it is
    # served to the territory's professionals and systems, not to everyone who signs in.
    if principal.kind == "client":
        return Decision(True, Basis.territory_system, "system of the territory")
    if principal.kind == "account" and principal.profile not in (None, Profile.patient):
        return Decision(True, Basis.professional, "professional of the territory")
    return _DENY_UNKNOWN


def _identity(principal: Principal, action: Action) -> Decision:
    # The master patient index is identity-vigilance's: its officers read and manage it; the
    # territory's systems (PIX/PDQ consumers, with Patient scopes) read it.
    if principal.kind == "account" and principal.profile == Profile.identity_vigilance:
        return Decision(True, Basis.identity_vigilance, "identity-vigilance officer")
    if principal.kind == "client" and action is Action.identity_read:
        return Decision(True, Basis.territory_system, "system of the territory")
    return _DENY_UNKNOWN


_CARE_PROFILES = frozenset(
    {Profile.hospital_physician, Profile.city_physician, Profile.pharmacist, Profile.nurse}
)


def _document_callers(principal: Principal, action: Action) -> Decision:
    if principal.kind == "client" and principal.establishment_id is not None:
        return Decision(True, Basis.territory_system, "system of an establishment")
    if principal.kind == "account" and principal.profile in _CARE_PROFILES:
        return Decision(True, Basis.professional, "professional of the territory")
    patient = principal.kind == "account" and principal.profile == Profile.patient
    if patient and action is Action.document_read:
        return Decision(True, Basis.patient, "their own record")
    return _DENY_UNKNOWN


@dataclass(frozen=True)
class RecordSubject:
    """What the decision needs to know of the person whose record is asked for."""

    person_id: uuid.UUID
    # Where the person has an active local identity: their care establishments.
    establishment_ids: frozenset[uuid.UUID]


@dataclass(frozen=True)
class Caller:
    """The caller as the record sees them: who they are beyond the token."""

    principal: Principal
    # The directory's practitioner an account's national id names (the author of documents).
    practitioner_id: uuid.UUID | None = None
    # A patient account's own person, merges followed.
    own_person_id: uuid.UUID | None = None


@dataclass(frozen=True)
class DocumentFacts:
    """The attributes of a document entry the rules read."""

    establishment_id: uuid.UUID | None
    author_practitioner_id: uuid.UUID | None
    author_account_id: uuid.UUID | None
    invisible_patient: bool
    masked_ps: bool
    entered_in_error: bool


@dataclass(frozen=True)
class RecordGrant:
    """What a caller may see of one person's record: the decision (its basis goes to the
    audit row) and which of the person's documents it admits. The document store turns
    the same fields into a query condition (`documents.service.grant_condition`)."""

    decision: Decision
    # Every document but those masked from professionals (MASQUE_PS) or entered in error.
    care_team: bool = False
    # Only documents not hidden from the patient (INVISIBLE_PATIENT) nor entered in error.
    patient: bool = False
    # Always: what the caller wrote or their establishment deposited, whatever its labels.
    author_practitioner_id: uuid.UUID | None = None
    author_account_id: uuid.UUID | None = None
    depositing_establishment_id: uuid.UUID | None = None

    def admits(self, document: DocumentFacts) -> bool:
        if not self.decision.allowed:
            return False
        if self.is_author_of(document):
            return True
        if document.entered_in_error:
            return False
        if self.care_team and not document.masked_ps:
            return True
        return self.patient and not document.invisible_patient

    def is_author_of(self, document: DocumentFacts) -> bool:
        return (
            (
                self.author_practitioner_id is not None
                and document.author_practitioner_id == self.author_practitioner_id
            )
            or (
                self.author_account_id is not None
                and document.author_account_id == self.author_account_id
            )
            or (
                self.depositing_establishment_id is not None
                and document.establishment_id == self.depositing_establishment_id
            )
        )


def decide_record(caller: Caller, subject: RecordSubject) -> RecordGrant:
    """May the caller see this person's documents, and which ones (provisional rules, until
    patients' consents are in force): the professionals and systems of the establishments
    where the person has a local identity; the author of a document; the patient themself,
    for what is not hidden from them. Nobody else."""
    principal = caller.principal
    if principal.kind == "client" and principal.establishment_id is not None:
        if principal.establishment_id in subject.establishment_ids:
            decision = Decision(True, Basis.care_establishment, "system of a care establishment")
            care_team = True
        else:
            decision, care_team = Decision(True, Basis.author, "what it deposited"), False
        return RecordGrant(
            decision, care_team=care_team, depositing_establishment_id=principal.establishment_id
        )
    if principal.kind != "account":
        return RecordGrant(_DENY_UNKNOWN)
    if principal.profile == Profile.patient:
        if caller.own_person_id is not None and caller.own_person_id == subject.person_id:
            return RecordGrant(
                Decision(True, Basis.patient, "the patient's own record"), patient=True
            )
        return RecordGrant(Decision(False, None, "another person's record"))
    if principal.profile not in _CARE_PROFILES:
        return RecordGrant(_DENY_UNKNOWN)
    if principal.establishment_id is not None and principal.establishment_id in (
        subject.establishment_ids
    ):
        decision = Decision(True, Basis.care_establishment, "professional of a care establishment")
        care_team = True
    else:
        decision, care_team = Decision(True, Basis.author, "documents they wrote"), False
    return RecordGrant(
        decision,
        care_team=care_team,
        author_practitioner_id=caller.practitioner_id,
        author_account_id=principal.account_id,
    )


def decide_deposit(principal: Principal, *, identity_establishment_id: uuid.UUID) -> Decision:
    """May the caller file a document under this local identity: an establishment's system
    under its own patients' identities; a professional under an identity of their own
    establishment (a city doctor's practice files under the identity it holds)."""
    if principal.kind == "operator":
        return Decision(True, Basis.operator, "operator at the server's command line")
    if (
        principal.establishment_id is None
        or principal.establishment_id != identity_establishment_id
    ):
        return Decision(False, None, "an identity of another establishment")
    if principal.kind == "client":
        return Decision(True, Basis.territory_system, "system of the identity's establishment")
    if principal.kind == "account" and principal.profile in _CARE_PROFILES:
        return Decision(True, Basis.care_establishment, "professional of the establishment")
    return _DENY_UNKNOWN


def scope_establishment(principal: Principal) -> uuid.UUID | None:
    """The establishment a listing must be narrowed to; None for territory-wide rights."""
    if principal.kind == "account" and principal.profile == Profile.establishment_admin:
        return principal.establishment_id
    return None


def require(
    session: Session,
    principal: Principal,
    action: Action,
    *,
    entity_type: str | None = None,
    entity_id: str | None = None,
    establishment_id: uuid.UUID | None = None,
    target_profile: str | None = None,
) -> Decision:
    """Allow, or record the denial (committed: it must outlive the failed request) and raise."""
    decision = decide(
        principal, action, establishment_id=establishment_id, target_profile=target_profile
    )
    if decision.allowed:
        return decision
    session.rollback()
    record(
        session,
        actor=principal.actor,
        action=f"access.{action.value}",
        outcome="denied",
        entity_type=entity_type,
        entity_id=entity_id,
        detail={"reason": decision.reason},
    )
    session.commit()
    raise NotFound()
