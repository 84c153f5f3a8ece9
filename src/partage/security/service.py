"""Reads of the security directory. Never commits."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from partage.access.decision import scope_establishment
from partage.db import utcnow
from partage.directory.models import Practitioner
from partage.directory.service import practitioner_by_national_id
from partage.security.actions import normalise_login
from partage.security.models import Account, Establishment, LoginThrottle, OAuthClient, Territory
from partage.security.principal import Principal


def get_territory(session: Session, *, code: str) -> Territory | None:
    return session.scalar(select(Territory).where(Territory.code == code))


def get_establishment(session: Session, *, code: str) -> Establishment | None:
    return session.scalar(select(Establishment).where(Establishment.code == code.strip().upper()))


def get_account(session: Session, *, login: str) -> Account | None:
    return session.scalar(select(Account).where(Account.login == normalise_login(login)))


def get_account_by_id(session: Session, *, account_id: uuid.UUID) -> Account | None:
    return session.get(Account, account_id)


def locked_logins(session: Session, *, logins: list[str]) -> set[str]:
    """Which of these logins are locked out now (too many failed sign-ins)."""
    if not logins:
        return set()
    stmt = select(LoginThrottle.login).where(
        LoginThrottle.login.in_(logins), LoginThrottle.locked_until > utcnow()
    )
    return set(session.scalars(stmt))


def get_client(session: Session, *, client_id: str) -> OAuthClient | None:
    return session.scalar(select(OAuthClient).where(OAuthClient.client_id == client_id))


def establishments_by_id(
    session: Session, ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, Establishment]:
    wanted = set(ids)
    if not wanted:
        return {}
    rows = session.scalars(select(Establishment).where(Establishment.id.in_(wanted)))
    return {row.id: row for row in rows}


def list_establishments(session: Session) -> list[Establishment]:
    return list(session.scalars(select(Establishment).order_by(Establishment.name)))


def list_accounts(
    session: Session, *, viewer: Principal, query: str = "", limit: int = 200
) -> list[Account]:
    stmt = select(Account).order_by(Account.login).limit(limit)
    narrowed = scope_establishment(viewer)
    if narrowed is not None:
        stmt = stmt.where(Account.establishment_id == narrowed)
    if query:
        like = f"%{query.strip().casefold()}%"
        stmt = stmt.where(Account.login.like(like) | Account.display_name.ilike(like))
    return list(session.scalars(stmt))


def list_clients(session: Session, *, viewer: Principal) -> list[OAuthClient]:
    stmt = select(OAuthClient).order_by(OAuthClient.name)
    narrowed = scope_establishment(viewer)
    if narrowed is not None:
        stmt = stmt.where(OAuthClient.establishment_id == narrowed)
    return list(session.scalars(stmt))


def practitioner_of(session: Session, *, account: Account) -> Practitioner | None:
    """The directory's practitioner a professional's account stands for (by national id)."""
    if not account.national_id:
        return None
    return practitioner_by_national_id(session, national_id=account.national_id)


def fhir_user(session: Session, *, issuer: str, account: Account) -> str | None:
    """SMART's `fhirUser`: the FHIR resource of the signed-in person, when there is one."""
    practitioner = practitioner_of(session, account=account)
    return f"{issuer}/fhir/Practitioner/{practitioner.id}" if practitioner else None
