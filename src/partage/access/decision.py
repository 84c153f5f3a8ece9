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


class Basis(StrEnum):
    operator = "operator"
    territory_admin = "territory_admin"
    establishment_admin = "establishment_admin"
    professional = "professional"
    territory_system = "territory_system"
    identity_vigilance = "identity_vigilance"


@dataclass(frozen=True)
class Decision:
    allowed: bool
    basis: Basis | None
    reason: str


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
