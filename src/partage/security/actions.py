"""Administration of the security directory: establishments, accounts, applications.

Each action checks the access decision itself, writes its audit row in the caller's
transaction and never commits: the caller's unit of work does.
"""

from __future__ import annotations

import hmac
import re
import secrets
import unicodedata
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from partage.access.decision import Action, require
from partage.audit.actions import record
from partage.db import utcnow
from partage.security.keyring import Keyring
from partage.security.models import (
    Account,
    AccountStatus,
    ClientStatus,
    Establishment,
    EstablishmentKind,
    LoginThrottle,
    OAuthClient,
    Profile,
    RefreshToken,
    SsoSession,
    Territory,
)
from partage.security.passwords import Passwords
from partage.security.principal import Principal
from partage.security.scopes import InvalidScope, Scopes

CLIENT_SECRET_PURPOSE = "client-secret"
_DOMAIN_CODE = re.compile(r"^[A-Z0-9][A-Z0-9-]{1,31}$")
_FINESS = re.compile(r"^(\d{9}|\d2[AB]\d{6})$")
_OID = re.compile(r"^[0-2](\.(0|[1-9]\d*))+$")
_LOGIN = re.compile(r"^[a-z0-9][a-z0-9._@+-]{2,119}$")
_NATIONAL_ID = re.compile(r"^(8\d{11}|0\d{9})$")
# Doctors and pharmacists are registered by their RPPS number only; nurses may still have
# an ADELI number.
_RPPS_ONLY = frozenset({Profile.hospital_physician, Profile.city_physician, Profile.pharmacist})
AUTH_METHODS = ("client_secret_basic", "client_secret_post", "private_key_jwt", "none")


class InvalidInput(ValueError):
    """The request is not acceptable; the message says why, for the person who sent it."""


class Conflict(InvalidInput):
    """Something with the same identifier already exists."""


def normalise_login(login: str) -> str:
    return unicodedata.normalize("NFKC", login).strip().casefold()


def domain_oid(code: str) -> str:
    """A stable OID for an establishment's patient ids when it has none registered (2.25 arc)."""
    return f"2.25.{uuid.uuid5(uuid.NAMESPACE_OID, 'partage-domain:' + code).int}"


def ensure_territory(session: Session, *, code: str, name: str) -> Territory:
    territory = session.scalar(select(Territory).where(Territory.code == code))
    if territory is None:
        territory = Territory(code=code, name=name)
        session.add(territory)
        session.flush()
    return territory


def create_establishment(
    session: Session,
    *,
    actor: Principal,
    territory: Territory,
    name: str,
    code: str,
    kind: EstablishmentKind = EstablishmentKind.hospital,
    finess: str | None = None,
    oid: str | None = None,
    city: str | None = None,
) -> Establishment:
    decision = require(session, actor, Action.establishment_manage, entity_type="Establishment")
    code = code.strip().upper()
    name = name.strip()
    if not _DOMAIN_CODE.match(code):
        raise InvalidInput("the domain code is 2 to 32 capitals, digits or hyphens (CHU-POITIERS)")
    if not name or len(name) > 200:
        raise InvalidInput("the name is required (200 characters at most)")
    if finess is not None and not _FINESS.match(finess):
        raise InvalidInput("a FINESS number is 9 characters (digits, or 2A/2B in Corsica)")
    oid = oid.strip() if oid else domain_oid(code)
    if not _OID.match(oid) or len(oid) > 128:
        raise InvalidInput("the OID must be dotted digits such as 1.2.250.1.71.4.2.1")
    if session.scalar(select(Establishment.id).where(Establishment.code == code)):
        raise Conflict(f"an establishment with domain {code} already exists")
    if session.scalar(select(Establishment.id).where(Establishment.patient_id_oid == oid)):
        raise Conflict(f"the OID {oid} is already the domain of another establishment")
    establishment = Establishment(
        territory_id=territory.id,
        code=code,
        name=name,
        kind=kind,
        finess=finess,
        patient_id_oid=oid,
        city=city,
    )
    session.add(establishment)
    session.flush()
    record(
        session,
        actor=actor.actor,
        action="establishment.create",
        entity_type="Establishment",
        entity_id=code,
        basis=decision.basis,
        detail={"name": name, "oid": oid, "kind": kind.value},
    )
    return establishment


def create_account(
    session: Session,
    passwords: Passwords,
    *,
    actor: Principal,
    login: str,
    display_name: str,
    profile: Profile,
    password: str,
    establishment: Establishment | None = None,
    email: str | None = None,
    national_id: str | None = None,
    person_id: uuid.UUID | None = None,
    is_demo: bool = False,
) -> Account:
    """`person_id`: a patient's own territorial person (their record)."""
    decision = require(
        session,
        actor,
        Action.account_manage,
        entity_type="Account",
        establishment_id=establishment.id if establishment else None,
        target_profile=profile,
    )
    login = normalise_login(login)
    display_name = display_name.strip()
    if not _LOGIN.match(login):
        raise InvalidInput("a login is 3 to 120 letters, digits or . _ @ + -")
    if not display_name or len(display_name) > 200:
        raise InvalidInput("the display name is required (200 characters at most)")
    national_id = _checked_national_id(national_id, profile)
    needs_establishment = profile in (
        Profile.hospital_physician,
        Profile.establishment_admin,
        Profile.identity_vigilance,
    )
    if needs_establishment and establishment is None:
        raise InvalidInput(f"a {profile.value} account belongs to an establishment")
    if person_id is not None:
        # Imported here: the security directory does not otherwise depend on identities.
        from partage.identity.models import Person

        if profile != Profile.patient:
            raise InvalidInput("only a patient's account opens on a person's record")
        if session.get(Person, person_id) is None:
            raise InvalidInput(f"no person {person_id} in the territory's index")
    try:
        passwords.check_policy(password, context=(login, *display_name.split()))
    except ValueError as exc:
        raise InvalidInput(f"password refused: {exc}") from exc
    if session.scalar(select(Account.id).where(Account.login == login)):
        raise Conflict(f"the login {login} is taken")
    account = Account(
        login=login,
        display_name=display_name,
        email=email,
        profile=profile,
        establishment_id=establishment.id if establishment else None,
        national_id=national_id,
        person_id=person_id,
        password_hash=passwords.hash(password),
        is_demo=is_demo,
    )
    session.add(account)
    session.flush()
    record(
        session,
        actor=actor.actor,
        action="account.create",
        entity_type="Account",
        entity_id=str(account.id),
        basis=decision.basis,
        detail={"login": login, "profile": profile.value},
    )
    return account


def _luhn_valid(digits: str) -> bool:
    total = 0
    for position, character in enumerate(reversed(digits)):
        value = int(character) * (2 if position % 2 else 1)
        total += value - 9 if value > 9 else value
    return total % 10 == 0


def _checked_national_id(national_id: str | None, profile: Profile) -> str | None:
    """The national id that links a professional's account to the directory, checked
    against the profile; spaces (as printed on professional cards) are dropped."""
    if national_id is None or not (national_id := "".join(national_id.split())):
        return None
    if not _NATIONAL_ID.match(national_id):
        raise InvalidInput("a national id is RPPS (8 + 11 digits) or ADELI (0 + 9 digits)")
    if profile is Profile.patient:
        raise InvalidInput("a patient account has no professional national id")
    if national_id.startswith("0") and profile in _RPPS_ONLY:
        raise InvalidInput(
            f"a {profile.value} is identified by an RPPS number (8 + 11 digits), not ADELI"
        )
    if national_id.startswith("8") and not _luhn_valid(national_id[1:]):
        raise InvalidInput(f"the RPPS number {national_id[1:]} has a wrong check digit")
    return national_id


def _end_account_sessions(session: Session, account_id: uuid.UUID) -> None:
    now = utcnow()
    session.execute(
        update(SsoSession)
        .where(SsoSession.account_id == account_id, SsoSession.ended_at.is_(None))
        .values(ended_at=now)
    )
    session.execute(
        update(RefreshToken)
        .where(RefreshToken.account_id == account_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )


def set_account_status(
    session: Session, *, actor: Principal, account: Account, active: bool, reason: str = ""
) -> Account:
    decision = require(
        session,
        actor,
        Action.account_manage,
        entity_type="Account",
        entity_id=str(account.id),
        establishment_id=account.establishment_id,
        target_profile=account.profile,
    )
    if active:
        account.status = AccountStatus.active
        account.disabled_at = None
    else:
        account.status = AccountStatus.disabled
        account.disabled_at = utcnow()
        # Disabling stops everything at once: sessions end, refresh tokens die, and access
        # tokens fail their per-request check of the account's state.
        _end_account_sessions(session, account.id)
    record(
        session,
        actor=actor.actor,
        action="account.enable" if active else "account.disable",
        entity_type="Account",
        entity_id=str(account.id),
        basis=decision.basis,
        detail={"login": account.login, "reason": reason[:500]},
    )
    return account


def unlock_account(session: Session, *, actor: Principal, account: Account) -> None:
    decision = require(
        session,
        actor,
        Action.account_manage,
        entity_type="Account",
        entity_id=str(account.id),
        establishment_id=account.establishment_id,
        target_profile=account.profile,
    )
    throttle = session.get(LoginThrottle, account.login)
    if throttle is not None:
        throttle.failures = 0
        throttle.locked_until = None
    record(
        session,
        actor=actor.actor,
        action="account.unlock",
        entity_type="Account",
        entity_id=str(account.id),
        basis=decision.basis,
    )


def reset_second_factor(session: Session, *, actor: Principal, account: Account) -> None:
    """Forget the account's TOTP secret: the person enrols again at their next sign-in."""
    decision = require(
        session,
        actor,
        Action.account_manage,
        entity_type="Account",
        entity_id=str(account.id),
        establishment_id=account.establishment_id,
        target_profile=account.profile,
    )
    account.totp_secret_sealed = None
    account.totp_confirmed_at = None
    account.totp_last_step = None
    _end_account_sessions(session, account.id)
    record(
        session,
        actor=actor.actor,
        action="account.mfa_reset",
        entity_type="Account",
        entity_id=str(account.id),
        basis=decision.basis,
    )


@dataclass(frozen=True)
class NewClient:
    client: OAuthClient
    # Shown once, never stored: only its keyed hash is.
    client_secret: str | None


def hash_client_secret(keyring: Keyring, secret: str) -> str:
    return keyring.mac(CLIENT_SECRET_PURPOSE, secret.encode())


def client_secret_matches(keyring: Keyring, client: OAuthClient, secret: str) -> bool:
    if client.secret_hash is None:
        return False
    return hmac.compare_digest(client.secret_hash, hash_client_secret(keyring, secret))


def _slug(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    return re.sub(r"[^a-z0-9]+", "-", folded).strip("-")[:24] or "client"


def create_client(
    session: Session,
    keyring: Keyring,
    *,
    actor: Principal,
    name: str,
    scopes: str,
    redirect_uris: list[str] | None = None,
    jwks: dict[str, Any] | None = None,
    public: bool = False,
    establishment: Establishment | None = None,
    trusted: bool = False,
) -> NewClient:
    decision = require(session, actor, Action.client_manage, entity_type="OAuthClient")
    name = name.strip()
    if not name or len(name) > 200:
        raise InvalidInput("the application name is required (200 characters at most)")
    try:
        parsed = Scopes.parse(scopes)
    except InvalidScope as exc:
        raise InvalidInput(str(exc)) from exc
    redirect_uris = [uri.strip() for uri in (redirect_uris or []) if uri.strip()]
    for uri in redirect_uris:
        if not re.match(r"^(https://|http://(127\.0\.0\.1|localhost|\[::1\])(:\d+)?/)", uri):
            raise InvalidInput(f"redirect URIs must be https (or loopback http): {uri}")
        if "#" in uri:
            raise InvalidInput("a redirect URI has no fragment")
    if jwks is not None and not isinstance(jwks.get("keys"), list):
        raise InvalidInput("the JWKS must be an object with a 'keys' list")
    if public and not redirect_uris:
        raise InvalidInput("a public application signs people in: it needs a redirect URI")
    if public:
        method = "none"
    elif jwks is not None:
        method = "private_key_jwt"
    else:
        method = "client_secret_basic"
    grant_types = ["authorization_code", "refresh_token"] if redirect_uris else []
    if not public and any(r.context == "system" for r in parsed.resources):
        grant_types.append("client_credentials")
    if not grant_types:
        raise InvalidInput("give system/ scopes (for a system) or a redirect URI (for people)")
    secret = None if method in ("none", "private_key_jwt") else secrets.token_urlsafe(32)
    client = OAuthClient(
        client_id=f"{_slug(name)}-{secrets.token_hex(4)}",
        name=name,
        secret_hash=hash_client_secret(keyring, secret) if secret else None,
        jwks=jwks,
        token_endpoint_auth_method=method,
        redirect_uris=redirect_uris,
        grant_types=grant_types,
        allowed_scopes=str(parsed),
        establishment_id=establishment.id if establishment else None,
        trusted=trusted,
    )
    session.add(client)
    session.flush()
    record(
        session,
        actor=actor.actor,
        action="client.create",
        entity_type="OAuthClient",
        entity_id=client.client_id,
        basis=decision.basis,
        detail={"name": name, "scopes": client.allowed_scopes, "auth": method},
    )
    return NewClient(client, secret)


def revoke_client(session: Session, *, actor: Principal, client: OAuthClient) -> OAuthClient:
    decision = require(
        session, actor, Action.client_manage, entity_type="OAuthClient", entity_id=client.client_id
    )
    now = utcnow()
    client.status = ClientStatus.revoked
    client.revoked_at = now
    session.execute(
        update(RefreshToken)
        .where(RefreshToken.client_id == client.client_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    record(
        session,
        actor=actor.actor,
        action="client.revoke",
        entity_type="OAuthClient",
        entity_id=client.client_id,
        basis=decision.basis,
    )
    return client
