"""The security directory: territory, establishments, accounts, applications, keys, sessions."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, LargeBinary, String, Text, Uuid
from sqlalchemy.orm import Mapped, mapped_column, relationship

from partage.db import Base, new_uuid, utcnow


class Profile(StrEnum):
    hospital_physician = "hospital_physician"
    city_physician = "city_physician"
    pharmacist = "pharmacist"
    nurse = "nurse"
    patient = "patient"
    identity_vigilance = "identity_vigilance"
    establishment_admin = "establishment_admin"
    territory_admin = "territory_admin"

    @property
    def requires_mfa(self) -> bool:
        return self is not Profile.patient


class EstablishmentKind(StrEnum):
    university_hospital = "university_hospital"
    hospital = "hospital"
    clinic = "clinic"
    city_practice = "city_practice"
    pharmacy = "pharmacy"
    nursing_practice = "nursing_practice"


class AccountStatus(StrEnum):
    active = "active"
    disabled = "disabled"


class ClientStatus(StrEnum):
    active = "active"
    revoked = "revoked"


class Territory(Base):
    __tablename__ = "territories"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_uuid)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Establishment(Base):
    """An identification domain: a structure whose patient ids (IPP) Partage federates."""

    __tablename__ = "establishments"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_uuid)
    territory_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("territories.id"))
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[EstablishmentKind] = mapped_column(String(32))
    finess: Mapped[str | None] = mapped_column(String(9))
    patient_id_oid: Mapped[str] = mapped_column(String(128), unique=True)
    city: Mapped[str | None] = mapped_column(String(100))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    territory: Mapped[Territory] = relationship(lazy="joined")


class Account(Base):
    __tablename__ = "accounts"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_uuid)
    login: Mapped[str] = mapped_column(String(120), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(254))
    profile: Mapped[Profile] = mapped_column(String(32))
    establishment_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("establishments.id"))
    # RPPS / ADELI national id: links a professional's account to the directory.
    national_id: Mapped[str | None] = mapped_column(String(12), index=True)
    # A patient's own territorial person (identity domain): what "their record" is.
    person_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, index=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    password_changed_at: Mapped[datetime] = mapped_column(default=utcnow)
    totp_secret_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    totp_confirmed_at: Mapped[datetime | None]
    # Last accepted TOTP time step: a code is accepted once.
    totp_last_step: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[AccountStatus] = mapped_column(String(16), default=AccountStatus.active)
    disabled_at: Mapped[datetime | None]
    locale: Mapped[str] = mapped_column(String(8), default="fr")
    is_demo: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_login_at: Mapped[datetime | None]

    establishment: Mapped[Establishment | None] = relationship(lazy="joined")

    @property
    def is_active(self) -> bool:
        return self.status == AccountStatus.active

    @property
    def has_totp(self) -> bool:
        return self.totp_confirmed_at is not None

    @property
    def profile_requires_mfa(self) -> bool:
        return Profile(self.profile).requires_mfa


class LoginThrottle(Base):
    """Failed sign-ins per login name, kept whether or not the account exists."""

    __tablename__ = "login_throttle"

    login: Mapped[str] = mapped_column(String(120), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None]
    last_failure_at: Mapped[datetime | None]


class WebAuthnCredential(Base):
    __tablename__ = "webauthn_credentials"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_uuid)
    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("accounts.id"), index=True)
    credential_id: Mapped[bytes] = mapped_column(LargeBinary, unique=True)
    public_key: Mapped[bytes] = mapped_column(LargeBinary)
    sign_count: Mapped[int] = mapped_column(Integer, default=0)
    name: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None]


class OAuthClient(Base):
    """An authorised application: a hospital's EHR or PACS, a portal, a mobile app."""

    __tablename__ = "oauth_clients"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=new_uuid)
    client_id: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    # HMAC of the secret under a server key: secrets are long random values, not passwords.
    secret_hash: Mapped[str | None] = mapped_column(String(64))
    jwks: Mapped[dict[str, object] | None] = mapped_column(JSON)
    token_endpoint_auth_method: Mapped[str] = mapped_column(String(32))
    redirect_uris: Mapped[list[str]] = mapped_column(JSON, default=list)
    grant_types: Mapped[list[str]] = mapped_column(JSON, default=list)
    allowed_scopes: Mapped[str] = mapped_column(Text, default="")
    establishment_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("establishments.id"))
    # First-party applications (the portal) skip the consent screen.
    trusted: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[ClientStatus] = mapped_column(String(16), default=ClientStatus.active)
    revoked_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    establishment: Mapped[Establishment | None] = relationship(lazy="joined")

    @property
    def is_active(self) -> bool:
        return self.status == ClientStatus.active


class SigningKey(Base):
    """A key that signs tokens. Retired keys stay published until their tokens expire."""

    __tablename__ = "signing_keys"

    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    alg: Mapped[str] = mapped_column(String(16))
    public_jwk: Mapped[dict[str, object]] = mapped_column(JSON)
    private_jwk_sealed: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    retired_at: Mapped[datetime | None]
    unpublish_after: Mapped[datetime | None]


class SsoSession(Base):
    """A person's single sign-on session at the provider; the cookie holds its secret."""

    __tablename__ = "sso_sessions"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    # Public identifier (the `sid` claim): never usable as the cookie.
    sid: Mapped[str] = mapped_column(String(64), unique=True)
    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("accounts.id"), index=True)
    # "password": first factor done, second pending; "complete": signed in.
    stage: Mapped[str] = mapped_column(String(16))
    amr: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    auth_time: Mapped[datetime | None]
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
    csrf_token: Mapped[str] = mapped_column(String(64))
    webauthn_challenge: Mapped[str | None] = mapped_column(String(200))

    account: Mapped[Account] = relationship(lazy="joined")


class AuthorizationCode(Base):
    __tablename__ = "authorization_codes"

    code_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64))
    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("accounts.id"))
    sid: Mapped[str] = mapped_column(String(64))
    redirect_uri: Mapped[str] = mapped_column(Text)
    scope: Mapped[str] = mapped_column(Text)
    code_challenge: Mapped[str] = mapped_column(String(128))
    nonce: Mapped[str | None] = mapped_column(String(256))
    auth_time: Mapped[datetime]
    amr: Mapped[list[str]] = mapped_column(JSON, default=list)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]


class RefreshToken(Base):
    """Opaque, rotated at each use; reuse of a spent token revokes its whole family."""

    __tablename__ = "refresh_tokens"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    family_id: Mapped[str] = mapped_column(String(64), index=True)
    client_id: Mapped[str] = mapped_column(String(64))
    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("accounts.id"), index=True)
    sid: Mapped[str | None] = mapped_column(String(64))
    scope: Mapped[str] = mapped_column(Text)
    auth_time: Mapped[datetime]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class RevokedAccessToken(Base):
    __tablename__ = "revoked_access_tokens"

    jti: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[datetime]


class UsedClientAssertion(Base):
    """`jti` of private_key_jwt assertions already seen: an assertion is accepted once."""

    __tablename__ = "used_client_assertions"

    client_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    jti: Mapped[str] = mapped_column(String(200), primary_key=True)
    expires_at: Mapped[datetime]
