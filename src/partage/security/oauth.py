"""The OAuth 2 / OpenID Connect token service: client authentication, codes, tokens.

Access tokens are short-lived ES256 JWTs. They are self-contained for signature and expiry,
but every request re-checks the state they stand on (`bearer.py`): the account or client
still active, the token not revoked, the person's SSO session not ended.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import unquote

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ec import ECDSA, EllipticCurvePrivateKey
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from cryptography.hazmat.primitives.hashes import SHA256
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from sqlalchemy import bindparam, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, lazyload

from partage.audit.actions import Actor, AuditEntry, new_entry, record
from partage.db import utcnow
from partage.ops.metrics import AUTH_EVENTS
from partage.platform import Platform
from partage.security import b64url, service
from partage.security.actions import client_secret_matches
from partage.security.authn import account_actor
from partage.security.models import (
    Account,
    AuthorizationCode,
    OAuthClient,
    RefreshToken,
    RevokedAccessToken,
    SsoSession,
    UsedClientAssertion,
)
from partage.security.scopes import InvalidScope, Scopes
from partage.security.signing import ACCESS_TOKEN_ALG, ID_TOKEN_ALG

JWT_BEARER_ASSERTION = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
# Common client libraries sign assertions valid for an hour; replay is stopped by the jti store.
MAX_ASSERTION_LIFETIME = timedelta(hours=1)


class OAuthError(Exception):
    """An RFC 6749 error response."""

    def __init__(self, error: str, description: str, *, status: int = 400) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status

    def body(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.description}


def digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def client_actor(client: OAuthClient) -> Actor:
    return Actor(kind="client", id=client.client_id, label=client.name)


# --- client authentication -------------------------------------------------------------


@dataclass(frozen=True)
class ClientCredentials:
    """What a request to the token endpoint presented to identify its client."""

    authorization: str | None
    client_id: str | None = None
    client_secret: str | None = None
    client_assertion_type: str | None = None
    client_assertion: str | None = None


def authenticate_client(
    session: Session, platform: Platform, creds: ClientCredentials, *, endpoint: str
) -> OAuthClient:
    invalid = OAuthError("invalid_client", "client authentication failed", status=401)
    if creds.authorization and creds.authorization[:6].lower() == "basic ":
        try:
            decoded = base64.b64decode(creds.authorization[6:].strip(), validate=True).decode()
            raw_id, raw_secret = decoded.split(":", 1)
        except (ValueError, UnicodeDecodeError):
            raise invalid from None
        # RFC 6749 §2.3.1: both parts are form-urlencoded before being joined.
        client_id, secret = unquote(raw_id), unquote(raw_secret)
        client = _client(session, client_id)
        if client is None or not client.is_active:
            raise invalid
        if not client_secret_matches(platform.keyring, client, secret):
            raise invalid
        return client
    if creds.client_assertion is not None:
        if creds.client_assertion_type != JWT_BEARER_ASSERTION:
            raise OAuthError("invalid_client", "unsupported client_assertion_type", status=401)
        return _authenticate_private_key_jwt(session, platform, creds, endpoint=endpoint)
    if creds.client_id is None:
        raise invalid
    client = _client(session, creds.client_id)
    if client is None or not client.is_active:
        raise invalid
    if creds.client_secret is not None:
        if not client_secret_matches(platform.keyring, client, creds.client_secret):
            raise invalid
        return client
    if client.token_endpoint_auth_method == "none":
        return client
    raise invalid


# Built once, and without the eager join to the establishment: the token endpoint's hot path.
_CLIENT_BY_ID = (
    select(OAuthClient)
    .where(OAuthClient.client_id == bindparam("client_id"))
    .options(lazyload(OAuthClient.establishment))
)


def _client(session: Session, client_id: str) -> OAuthClient | None:
    # Client ids are ours (64 printable characters at most): anything else names no client,
    # and must not reach the database (PostgreSQL refuses a NUL byte in text outright).
    if not client_id or len(client_id) > 64 or not client_id.isprintable():
        return None
    return session.scalar(_CLIENT_BY_ID, {"client_id": client_id})


def _unverified_claims(assertion: str) -> dict[str, Any]:
    try:
        claims = json.loads(b64url.decode(assertion.split(".")[1]))
    except (IndexError, ValueError):
        raise OAuthError("invalid_client", "malformed client assertion", status=401) from None
    if not isinstance(claims, dict):
        raise OAuthError("invalid_client", "malformed client assertion", status=401)
    return claims


def claimed_client_id(creds: ClientCredentials) -> str | None:
    """The client id a failed authentication claimed, for its audit row (never trusted)."""
    if creds.authorization and creds.authorization[:6].lower() == "basic ":
        try:
            decoded = base64.b64decode(creds.authorization[6:].strip(), validate=True).decode()
        except (ValueError, UnicodeDecodeError):
            return None
        return unquote(decoded.split(":", 1)[0])
    if creds.client_assertion:
        try:
            issuer = _unverified_claims(creds.client_assertion).get("iss")
        except OAuthError:
            return None
        return issuer if isinstance(issuer, str) else None
    return creds.client_id


def _authenticate_private_key_jwt(
    session: Session, platform: Platform, creds: ClientCredentials, *, endpoint: str
) -> OAuthClient:
    invalid = OAuthError("invalid_client", "client assertion rejected", status=401)
    assertion = creds.client_assertion or ""
    claims = _unverified_claims(assertion)
    client_id = creds.client_id or claims.get("iss")
    if not isinstance(client_id, str):
        raise invalid
    client = _client(session, client_id)
    if client is None or not client.is_active or not client.jwks:
        raise invalid
    try:
        keys = KeySet.import_key_set(client.jwks)  # type: ignore[arg-type]
        token = jwt.decode(assertion, keys, algorithms=["RS256", "RS384", "ES256", "ES384"])
    except (JoseError, ValueError, TypeError):
        raise invalid from None
    verified = token.claims
    now = int(utcnow().timestamp())
    audiences = verified.get("aud")
    audiences = [audiences] if isinstance(audiences, str) else list(audiences or [])
    exp = verified.get("exp")
    jti = verified.get("jti")
    if (
        verified.get("iss") != client_id
        or verified.get("sub") != client_id
        or not ({endpoint, platform.settings.issuer} & set(audiences))
        or not isinstance(exp, int)
        or exp < now
        or exp > now + MAX_ASSERTION_LIFETIME.total_seconds()
        or not isinstance(jti, str)
        or len(jti) > 200
    ):
        raise invalid
    try:
        with session.begin_nested():
            session.add(
                UsedClientAssertion(
                    client_id=client_id,
                    jti=jti,
                    expires_at=datetime.fromtimestamp(exp, tz=utcnow().tzinfo),
                )
            )
    except IntegrityError:
        raise OAuthError("invalid_client", "client assertion replayed", status=401) from None
    return client


# --- tokens ---------------------------------------------------------------------------


@dataclass(frozen=True)
class IssuedToken:
    value: str
    jti: str
    expires_in: int


def issue_access_token(
    platform: Platform,
    *,
    subject: str,
    client: OAuthClient,
    scope: Scopes,
    kind: str,
    sid: str | None = None,
) -> IssuedToken:
    ttl = platform.settings.access_token_ttl_seconds
    now = int(utcnow().timestamp())
    jti = secrets.token_urlsafe(16)
    claims: dict[str, Any] = {
        "iss": platform.settings.issuer,
        "aud": platform.settings.issuer,
        "sub": subject,
        "client_id": client.client_id,
        "scope": str(scope),
        "iat": now,
        "nbf": now,
        "exp": now + ttl,
        "jti": jti,
        # "account" tokens act for a person, "client" tokens for a system.
        "ptype": kind,
    }
    if sid:
        claims["sid"] = sid
    kid, key = platform.signing_keys.access_token_signer()
    header = {"alg": ACCESS_TOKEN_ALG, "kid": kid, "typ": "at+jwt"}
    return IssuedToken(_sign_es256(header, claims, key), jti, ttl)


def _compact_json(value: dict[str, Any]) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _sign_es256(
    header: dict[str, Any], claims: dict[str, Any], key: EllipticCurvePrivateKey
) -> str:
    """Compact JWS, ES256 (RFC 7515/7518), signed with `cryptography` directly: every token
    goes through here. `decode_own_token` is its counterpart; the tests check both against
    an independent JOSE library."""
    signing_input = f"{b64url.encode(_compact_json(header))}.{b64url.encode(_compact_json(claims))}"
    r, s = decode_dss_signature(key.sign(signing_input.encode(), ECDSA(SHA256())))
    signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    return f"{signing_input}.{b64url.encode(signature)}"


def _id_token(
    platform: Platform,
    *,
    account: Account,
    client: OAuthClient,
    nonce: str | None,
    auth_time: datetime,
    amr: list[str],
    sid: str | None,
    access_token: str,
    fhir_user: str | None,
) -> str:
    now = int(utcnow().timestamp())
    at_digest = hashlib.sha256(access_token.encode()).digest()
    claims: dict[str, Any] = {
        "iss": platform.settings.issuer,
        "aud": client.client_id,
        "sub": str(account.id),
        "iat": now,
        "exp": now + platform.settings.access_token_ttl_seconds,
        "auth_time": int(auth_time.timestamp()),
        "amr": amr,
        "at_hash": b64url.encode(at_digest[:16]),
        "name": account.display_name,
        "preferred_username": account.login,
        "profile_code": account.profile,
    }
    if nonce:
        claims["nonce"] = nonce
    if sid:
        claims["sid"] = sid
    if fhir_user:
        claims["fhirUser"] = fhir_user
    key = platform.signing_keys.signing_key(ID_TOKEN_ALG)
    return jwt.encode({"alg": ID_TOKEN_ALG, "kid": key.kid, "typ": "JWT"}, claims, key)


def _parse_scope(text: str) -> Scopes:
    try:
        return Scopes.parse(text)
    except InvalidScope as exc:
        raise OAuthError("invalid_scope", str(exc)) from None


def grant_client_credentials(
    platform: Platform, client: OAuthClient, *, scope: str | None
) -> tuple[dict[str, Any], AuditEntry]:
    """The token response and its audit entry (which the caller must commit before answering:
    the grant itself writes nothing)."""
    if "client_credentials" not in client.grant_types:
        raise OAuthError("unauthorized_client", "this client may not use client_credentials")
    allowed = Scopes.parse(client.allowed_scopes)
    requested = _parse_scope(scope) if scope else allowed
    granted = requested.narrow_to(allowed)
    granted = Scopes(tuple(r for r in granted.resources if r.context == "system"), frozenset())
    if not granted.resources:
        raise OAuthError("invalid_scope", "none of the requested scopes is allowed")
    token = issue_access_token(
        platform, subject=client.client_id, client=client, scope=granted, kind="client"
    )
    entry = new_entry(
        actor=client_actor(client),
        action="token.issue",
        entity_type="OAuthClient",
        entity_id=client.client_id,
        detail={"grant": "client_credentials", "scope": str(granted), "jti": token.jti},
    )
    AUTH_EVENTS.labels("token", "client_credentials").inc()
    body = {
        "access_token": token.value,
        "token_type": "Bearer",
        "expires_in": token.expires_in,
        "scope": str(granted),
    }
    return body, entry


def create_authorization_code(
    session: Session,
    platform: Platform,
    *,
    client: OAuthClient,
    sso: SsoSession,
    redirect_uri: str,
    scope: Scopes,
    code_challenge: str,
    nonce: str | None,
) -> str:
    code = secrets.token_urlsafe(32)
    session.add(
        AuthorizationCode(
            code_hash=digest(code),
            client_id=client.client_id,
            account_id=sso.account_id,
            sid=sso.sid,
            redirect_uri=redirect_uri,
            scope=str(scope),
            code_challenge=code_challenge,
            nonce=nonce,
            auth_time=sso.auth_time or utcnow(),
            amr=list(sso.amr),
            expires_at=utcnow()
            + timedelta(seconds=platform.settings.authorization_code_ttl_seconds),
        )
    )
    record(
        session,
        actor=account_actor(sso.account),
        action="oauth.authorize",
        entity_type="OAuthClient",
        entity_id=client.client_id,
        detail={"scope": str(scope)},
    )
    return code


def _pkce_matches(verifier: str, challenge: str) -> bool:
    if not 43 <= len(verifier) <= 128:
        return False
    computed = b64url.encode(hashlib.sha256(verifier.encode()).digest())
    return secrets.compare_digest(computed, challenge)


def _user_tokens(
    session: Session,
    platform: Platform,
    *,
    client: OAuthClient,
    account: Account,
    scope: Scopes,
    sid: str | None,
    auth_time: datetime,
    amr: list[str],
    nonce: str | None,
    family_id: str | None,
    grant: str,
) -> dict[str, Any]:
    access = issue_access_token(
        platform, subject=str(account.id), client=client, scope=scope, kind="account", sid=sid
    )
    body: dict[str, Any] = {
        "access_token": access.value,
        "token_type": "Bearer",
        "expires_in": access.expires_in,
        "scope": str(scope),
    }
    if scope.has("openid"):
        body["id_token"] = _id_token(
            platform,
            account=account,
            client=client,
            nonce=nonce,
            auth_time=auth_time,
            amr=amr,
            sid=sid,
            access_token=access.value,
            fhir_user=service.fhir_user(session, issuer=platform.settings.issuer, account=account)
            if scope.has("fhirUser")
            else None,
        )
    if "refresh_token" in client.grant_types:
        refresh = secrets.token_urlsafe(32)
        now = utcnow()
        session.add(
            RefreshToken(
                token_hash=digest(refresh),
                family_id=family_id or secrets.token_urlsafe(16),
                client_id=client.client_id,
                account_id=account.id,
                sid=sid,
                scope=str(scope),
                auth_time=auth_time,
                created_at=now,
                expires_at=now + timedelta(seconds=platform.settings.refresh_token_ttl_seconds),
            )
        )
        body["refresh_token"] = refresh
    record(
        session,
        actor=account_actor(account),
        action="token.issue",
        entity_type="OAuthClient",
        entity_id=client.client_id,
        detail={"grant": grant, "scope": str(scope), "jti": access.jti},
    )
    AUTH_EVENTS.labels("token", grant).inc()
    return body


def grant_authorization_code(
    session: Session,
    platform: Platform,
    client: OAuthClient,
    *,
    code: str,
    redirect_uri: str | None,
    code_verifier: str | None,
) -> dict[str, Any]:
    invalid = OAuthError("invalid_grant", "the authorization code is invalid or expired")
    if "authorization_code" not in client.grant_types:
        raise OAuthError("unauthorized_client", "this client may not use authorization_code")
    row = session.get(AuthorizationCode, digest(code))
    if row is None or row.client_id != client.client_id:
        raise invalid
    if row.used_at is not None:
        # A replayed code: whatever it gave is suspect (RFC 6749 §4.1.2).
        session.execute(
            update(RefreshToken)
            .where(RefreshToken.sid == row.sid, RefreshToken.client_id == client.client_id)
            .values(revoked_at=utcnow())
        )
        record(
            session,
            actor=client_actor(client),
            action="token.code_replay",
            outcome="denied",
            entity_type="OAuthClient",
            entity_id=client.client_id,
        )
        raise invalid
    row.used_at = utcnow()
    if row.expires_at <= utcnow() or redirect_uri != row.redirect_uri:
        raise invalid
    if not code_verifier or not _pkce_matches(code_verifier, row.code_challenge):
        raise OAuthError("invalid_grant", "PKCE verification failed")
    account = session.get(Account, row.account_id)
    if account is None or not account.is_active:
        raise invalid
    return _user_tokens(
        session,
        platform,
        client=client,
        account=account,
        scope=Scopes.parse(row.scope),
        sid=row.sid,
        auth_time=row.auth_time,
        amr=row.amr,
        nonce=row.nonce,
        family_id=None,
        grant="authorization_code",
    )


def grant_refresh_token(
    session: Session,
    platform: Platform,
    client: OAuthClient,
    *,
    refresh_token: str,
    scope: str | None,
) -> dict[str, Any]:
    invalid = OAuthError("invalid_grant", "the refresh token is invalid or expired")
    row = session.get(RefreshToken, digest(refresh_token))
    if row is None or row.client_id != client.client_id:
        raise invalid
    now = utcnow()
    if row.used_at is not None:
        # Reuse of a rotated token: someone else holds the family. Revoke it whole.
        session.execute(
            update(RefreshToken)
            .where(RefreshToken.family_id == row.family_id, RefreshToken.revoked_at.is_(None))
            .values(revoked_at=now)
        )
        record(
            session,
            actor=client_actor(client),
            action="token.refresh_reuse",
            outcome="denied",
            entity_type="Account",
            entity_id=str(row.account_id),
        )
        raise invalid
    if row.revoked_at is not None or row.expires_at <= now:
        raise invalid
    account = session.get(Account, row.account_id)
    if account is None or not account.is_active:
        raise invalid
    if row.sid and not _sso_alive(session, row.sid):
        raise invalid
    row.used_at = now
    granted = Scopes.parse(row.scope)
    if scope:
        granted = _parse_scope(scope).narrow_to(granted)
    return _user_tokens(
        session,
        platform,
        client=client,
        account=account,
        scope=granted,
        sid=row.sid,
        auth_time=row.auth_time,
        amr=["pwd"],
        nonce=None,
        family_id=row.family_id,
        grant="refresh_token",
    )


def _sso_alive(session: Session, sid: str) -> bool:
    ended = session.execute(
        select(SsoSession.ended_at, SsoSession.expires_at).where(SsoSession.sid == sid)
    ).first()
    return ended is not None and ended[0] is None and ended[1] > utcnow()


def decode_own_token(platform: Platform, token: str) -> dict[str, Any] | None:
    """Claims of an access token we signed, checked for signature, issuer and time; else None.

    Verified with `cryptography` directly: this runs on every API request. A token verified
    before by the same key is not verified again (its time is always checked).
    """
    if len(token) > 8192:
        return None
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        header = json.loads(b64url.decode(parts[0]))
        if not isinstance(header, dict) or header.get("alg") != ACCESS_TOKEN_ALG:
            return None
        kid = header.get("kid")
        keys = platform.signing_keys
        verifier = keys.access_token_verifier(kid) if isinstance(kid, str) else None
        if verifier is None:
            return None
        digest = hashlib.sha256(token.encode()).digest()
        claims = keys.verified_claims(digest, verifier)
        if claims is None:
            signature = b64url.decode(parts[2])
            if len(signature) != 64:
                return None
            der = encode_dss_signature(
                int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
            )
            verifier.verify(der, f"{parts[0]}.{parts[1]}".encode(), ECDSA(SHA256()))
            claims = json.loads(b64url.decode(parts[1]))
            if isinstance(claims, dict):
                keys.remember_verified(digest, verifier, claims)
    except (InvalidSignature, ValueError, TypeError, UnicodeDecodeError):
        return None
    if not isinstance(claims, dict):
        return None
    now = int(utcnow().timestamp())
    exp, nbf = claims.get("exp"), claims.get("nbf", 0)
    if (
        claims.get("iss") != platform.settings.issuer
        or not isinstance(exp, int)
        or exp <= now
        or not isinstance(nbf, int)
        or nbf > now + 30
    ):
        return None
    return claims


def decode_id_token_audience(platform: Platform, id_token: str) -> str | None:
    """The client an ID token we signed was issued to (expired or not: a logout hint)."""
    if not id_token or len(id_token) > 8192:
        return None
    try:
        keys = platform.signing_keys.verification_keys(None)
        decoded = jwt.decode(id_token, keys, algorithms=[ID_TOKEN_ALG])
    except (JoseError, ValueError, TypeError):
        return None
    audience = decoded.claims.get("aud")
    if decoded.claims.get("iss") != platform.settings.issuer or not isinstance(audience, str):
        return None
    return audience


def revoke_token(session: Session, platform: Platform, client: OAuthClient, *, token: str) -> None:
    """RFC 7009: revoke a refresh token (its whole family) or an access token (its jti)."""
    row = session.get(RefreshToken, digest(token))
    if row is not None:
        if row.client_id == client.client_id:
            session.execute(
                update(RefreshToken)
                .where(RefreshToken.family_id == row.family_id, RefreshToken.revoked_at.is_(None))
                .values(revoked_at=utcnow())
            )
            record(
                session,
                actor=client_actor(client),
                action="token.revoke",
                entity_type="RefreshToken",
                entity_id=row.family_id,
            )
        return
    claims = decode_own_token(platform, token)
    if claims is None or claims.get("client_id") != client.client_id:
        return
    jti = str(claims.get("jti"))
    if session.get(RevokedAccessToken, jti) is None:
        session.add(
            RevokedAccessToken(
                jti=jti,
                expires_at=datetime.fromtimestamp(int(claims["exp"]), tz=utcnow().tzinfo),
            )
        )
        record(
            session,
            actor=client_actor(client),
            action="token.revoke",
            entity_type="AccessToken",
            entity_id=jti,
        )
