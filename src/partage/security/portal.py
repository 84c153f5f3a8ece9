"""The portal as a client of our own OpenID provider: registration, id_token, session.

The portal signs people in like any other application (authorization code + PKCE); it only
skips the HTTP hop of the token exchange. Its own session is a signed cookie naming the
account and the provider's SSO session (`sid`); every request re-checks both in one query,
so disabling an account or ending its SSO session stops the portal at the next request.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from partage.audit.actions import SYSTEM_ACTOR, record
from partage.config import Settings
from partage.db import transaction, utcnow
from partage.security import b64url
from partage.security.keyring import Keyring
from partage.security.models import OAuthClient, SsoSession
from partage.security.signing import ID_TOKEN_ALG, SigningKeys

PORTAL_CLIENT_ID = "partage-portal"
PORTAL_CLIENT_NAME = "Portail Partage"
PORTAL_SCOPES = "openid profile offline_access user/*.rs"
# What the portal asks for at each sign-in (no refresh token: the exchange is in-process).
PORTAL_REQUESTED_SCOPES = "openid profile user/*.rs"
PORTAL_CALLBACK_PATH = "/portal/callback"
SESSION_PURPOSE = "portal-session"
FLOW_PURPOSE = "portal-flow"
FLOW_TTL_SECONDS = 600
# The provider's SSO session is touched at most this often by portal requests.
TOUCH_EVERY = timedelta(seconds=60)


def portal_redirect_uri(settings: Settings) -> str:
    return f"{settings.issuer}{PORTAL_CALLBACK_PATH}"


def ensure_portal_client(session: Session, settings: Settings) -> OAuthClient:
    """Register the portal (idempotent); keep its redirect URI in step with the public URL.

    A revoked portal stays revoked: that is an administrator's decision, not ours to undo.
    """
    redirect_uri = portal_redirect_uri(settings)
    client = session.scalar(select(OAuthClient).where(OAuthClient.client_id == PORTAL_CLIENT_ID))
    if client is None:
        client = OAuthClient(
            client_id=PORTAL_CLIENT_ID,
            name=PORTAL_CLIENT_NAME,
            secret_hash=None,
            jwks=None,
            token_endpoint_auth_method="none",  # noqa: S106 - a method name, not a secret
            redirect_uris=[redirect_uri],
            grant_types=["authorization_code"],
            allowed_scopes=PORTAL_SCOPES,
            trusted=True,
        )
        session.add(client)
        record(
            session,
            actor=SYSTEM_ACTOR,
            action="client.bootstrap",
            entity_type="OAuthClient",
            entity_id=PORTAL_CLIENT_ID,
            detail={"redirect_uri": redirect_uri},
        )
    elif client.redirect_uris != [redirect_uri] or client.allowed_scopes != PORTAL_SCOPES:
        client.redirect_uris = [redirect_uri]
        client.allowed_scopes = PORTAL_SCOPES
        record(
            session,
            actor=SYSTEM_ACTOR,
            action="client.bootstrap",
            entity_type="OAuthClient",
            entity_id=PORTAL_CLIENT_ID,
            detail={"redirect_uri": redirect_uri, "updated": True},
        )
    return client


def bootstrap_portal_client(sessions: sessionmaker[Session], settings: Settings) -> None:
    """At start-up: two processes starting at once may race; the loser finds it made."""
    try:
        with transaction(sessions) as session:
            ensure_portal_client(session, settings)
    except IntegrityError:
        with transaction(sessions) as session:
            ensure_portal_client(session, settings)


# --- signed values ---------------------------------------------------------------------


def sign_value(keyring: Keyring, purpose: str, payload: dict[str, Any]) -> str:
    body = b64url.encode(json.dumps(payload, separators=(",", ":"), sort_keys=True).encode())
    return f"{body}.{keyring.mac(purpose, body.encode())}"


def read_signed_value(keyring: Keyring, purpose: str, value: str | None) -> dict[str, Any] | None:
    """The payload of a value we signed for this purpose and that has not expired."""
    if not value or len(value) > 4096 or value.count(".") != 1:
        return None
    body, mac = value.split(".")
    if not hmac.compare_digest(mac, keyring.mac(purpose, body.encode())):
        return None
    try:
        payload = json.loads(b64url.decode(body))
    except ValueError:
        return None
    if not isinstance(payload, dict):
        return None
    expires = payload.get("exp")
    if not isinstance(expires, int) or expires <= int(utcnow().timestamp()):
        return None
    return payload


# --- the sign-in flow ------------------------------------------------------------------


@dataclass(frozen=True)
class SignInFlow:
    """What the portal remembers between sending a person to the provider and their return."""

    state: str
    nonce: str
    code_verifier: str
    return_to: str

    @property
    def code_challenge(self) -> str:
        return b64url.encode(hashlib.sha256(self.code_verifier.encode()).digest())


def new_sign_in_flow(return_to: str) -> SignInFlow:
    return SignInFlow(
        state=secrets.token_urlsafe(24),
        nonce=secrets.token_urlsafe(24),
        code_verifier=secrets.token_urlsafe(48),
        return_to=return_to,
    )


def seal_flow(keyring: Keyring, flow: SignInFlow) -> str:
    expires = int(utcnow().timestamp()) + FLOW_TTL_SECONDS
    return sign_value(
        keyring,
        FLOW_PURPOSE,
        {
            "s": flow.state,
            "n": flow.nonce,
            "v": flow.code_verifier,
            "r": flow.return_to,
            "exp": expires,
        },
    )


def open_flow(keyring: Keyring, value: str | None) -> SignInFlow | None:
    payload = read_signed_value(keyring, FLOW_PURPOSE, value)
    if payload is None:
        return None
    fields = (payload.get("s"), payload.get("n"), payload.get("v"), payload.get("r"))
    if not all(isinstance(item, str) for item in fields):
        return None
    state, nonce, verifier, return_to = (str(item) for item in fields)
    return SignInFlow(state, nonce, verifier, return_to)


class InvalidIdTokenError(Exception):
    """The id_token is not ours, not for the portal, expired or for another sign-in."""


@dataclass(frozen=True)
class PortalIdentity:
    account_id: uuid.UUID
    sid: str


def validate_id_token(
    signing_keys: SigningKeys, settings: Settings, id_token: str, *, nonce: str
) -> PortalIdentity:
    try:
        header = json.loads(b64url.decode(id_token.split(".")[0]))
        kid = header.get("kid") if isinstance(header, dict) else None
        keys = signing_keys.verification_keys(kid if isinstance(kid, str) else None)
        claims = dict(jwt.decode(id_token, keys, algorithms=[ID_TOKEN_ALG]).claims)
    except (JoseError, ValueError, TypeError, IndexError, UnicodeDecodeError):
        raise InvalidIdTokenError("unreadable id_token") from None
    now = int(utcnow().timestamp())
    expires, got_nonce, sid, subject = (
        claims.get("exp"),
        claims.get("nonce"),
        claims.get("sid"),
        claims.get("sub"),
    )
    if (
        claims.get("iss") != settings.issuer
        or claims.get("aud") != PORTAL_CLIENT_ID
        or not isinstance(expires, int)
        or expires <= now
        or not isinstance(got_nonce, str)
        or not hmac.compare_digest(got_nonce, nonce)
        or not isinstance(sid, str)
        or not isinstance(subject, str)
    ):
        raise InvalidIdTokenError("id_token claims rejected")
    try:
        account_id = uuid.UUID(subject)
    except ValueError:
        raise InvalidIdTokenError("id_token subject is not an account") from None
    return PortalIdentity(account_id, sid)


# --- the portal session ----------------------------------------------------------------


def seal_portal_session(keyring: Keyring, settings: Settings, identity: PortalIdentity) -> str:
    expires = int(utcnow().timestamp()) + settings.sso_session_ttl_seconds
    return sign_value(
        keyring, SESSION_PURPOSE, {"a": str(identity.account_id), "s": identity.sid, "exp": expires}
    )


def open_portal_session(keyring: Keyring, value: str | None) -> PortalIdentity | None:
    payload = read_signed_value(keyring, SESSION_PURPOSE, value)
    if payload is None:
        return None
    account, sid = payload.get("a"), payload.get("s")
    if not isinstance(account, str) or not isinstance(sid, str):
        return None
    try:
        return PortalIdentity(uuid.UUID(account), sid)
    except ValueError:
        return None


def live_sso_session(
    session: Session, settings: Settings, identity: PortalIdentity
) -> SsoSession | None:
    """The SSO session behind a portal session if it and its account are still good.

    One query: the SSO session with its account and establishment (joined eagerly).
    """
    sso = session.scalar(select(SsoSession).where(SsoSession.sid == identity.sid))
    if sso is None or sso.account_id != identity.account_id or sso.ended_at is not None:
        return None
    now = utcnow()
    idle = timedelta(seconds=settings.sso_idle_timeout_seconds)
    if (
        sso.stage != "complete"  # authn.Stage.complete (authn depends on the platform)
        or sso.expires_at <= now
        or sso.last_seen_at + idle <= now
        or not sso.account.is_active
    ):
        return None
    # Using the portal is activity at the provider too: keep the SSO session from idling out.
    if now - sso.last_seen_at > TOUCH_EVERY:
        sso.last_seen_at = now
    return sso


def get_sso_session(session: Session, *, sid: str) -> SsoSession | None:
    return session.scalar(select(SsoSession).where(SsoSession.sid == sid))
