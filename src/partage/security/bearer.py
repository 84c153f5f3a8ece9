"""Who is calling an API with a bearer token, re-checked against the current state.

A token's signature and expiry are checked locally; then one indexed read confirms that the
account (or the client) is still active, that the token was not revoked, and that the
person's SSO session has not ended. A disabled account or a revoked client stops working at
the next request, not at the token's expiry.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import Connection, bindparam, select
from sqlalchemy.orm import Session

from partage.platform import Platform
from partage.security.models import (
    Account,
    AccountStatus,
    ClientStatus,
    OAuthClient,
    RevokedAccessToken,
    SsoSession,
)
from partage.security.oauth import decode_own_token
from partage.security.principal import Principal
from partage.security.scopes import InvalidScope, Scopes


class InvalidToken(Exception):
    """Missing, malformed, expired, revoked, or standing on a disabled account or client."""


# Built once: these run on every API request.
_CLIENT_STATE = (
    select(
        OAuthClient.status, OAuthClient.name, RevokedAccessToken.jti, OAuthClient.establishment_id
    )
    .select_from(OAuthClient)
    .outerjoin(RevokedAccessToken, RevokedAccessToken.jti == bindparam("jti"))
    .where(OAuthClient.client_id == bindparam("client_id"))
)
_ACCOUNT_STATE = (
    select(
        Account.status,
        Account.login,
        Account.profile,
        Account.establishment_id,
        OAuthClient.status,
        RevokedAccessToken.jti,
        SsoSession.ended_at,
        SsoSession.sid,
    )
    .select_from(Account)
    .join(OAuthClient, OAuthClient.client_id == bindparam("client_id"))
    .outerjoin(RevokedAccessToken, RevokedAccessToken.jti == bindparam("jti"))
    .outerjoin(SsoSession, SsoSession.sid == bindparam("sid"))
    .where(Account.id == bindparam("account_id"))
)


@dataclass(frozen=True)
class TokenClaims:
    """What an access token we signed says, its signature and expiry checked: who it was
    issued to, not yet whether that still holds (`principal_for`)."""

    kind: str
    client_id: str
    jti: str
    scopes: Scopes
    account_id: uuid.UUID | None = None
    sid: str | None = None


def read_token(platform: Platform, token: str) -> TokenClaims:
    """The token's claims, checked locally (signature, issuer, time, form); no database."""
    claims = decode_own_token(platform, token)
    if claims is None:
        raise InvalidToken("invalid token")
    try:
        scopes = Scopes.parse(str(claims.get("scope", "")))
    except InvalidScope:
        raise InvalidToken("invalid token") from None
    client_id = str(claims.get("client_id", ""))
    jti = str(claims.get("jti", ""))
    kind = claims.get("ptype")
    if kind == "client":
        return TokenClaims("client", client_id, jti, scopes)
    if kind == "account":
        try:
            account_id = uuid.UUID(str(claims.get("sub")))
        except ValueError:
            raise InvalidToken("invalid token") from None
        sid = claims.get("sid")
        # A present but empty sid is kept: it then matches no session (refused).
        return TokenClaims(
            "account", client_id, jti, scopes, account_id, str(sid) if sid is not None else None
        )
    raise InvalidToken("invalid token")


def principal_for(db: Session | Connection, claims: TokenClaims) -> Principal:
    """The principal a token stands for, once the current state confirms it (one read)."""
    if claims.kind == "client":
        row = db.execute(_CLIENT_STATE, {"jti": claims.jti, "client_id": claims.client_id}).first()
        if row is None or row[0] != ClientStatus.active or row[2] is not None:
            raise InvalidToken("invalid token")
        # An establishment's system acts for that establishment (its patients' documents).
        return Principal(
            kind="client",
            label=row[1],
            client_id=claims.client_id,
            scopes=claims.scopes,
            establishment_id=row[3],
        )
    sid = claims.sid
    found = db.execute(
        _ACCOUNT_STATE,
        {
            "client_id": claims.client_id,
            "jti": claims.jti,
            "sid": sid or "",
            "account_id": claims.account_id,
        },
    ).first()
    if (
        found is None
        or found[0] != AccountStatus.active
        or found[4] != ClientStatus.active
        or found[5] is not None
        or (sid is not None and (found[7] is None or found[6] is not None))
    ):
        raise InvalidToken("invalid token")
    return Principal(
        kind="account",
        label=found[1],
        account_id=claims.account_id,
        profile=found[2],
        establishment_id=found[3],
        client_id=claims.client_id,
        scopes=claims.scopes,
        sid=sid or None,
    )


def principal_from_token(db: Session | Connection, platform: Platform, token: str) -> Principal:
    return principal_for(db, read_token(platform, token))


def bearer_token(authorization: str | None) -> str | None:
    if not authorization or authorization[:7].lower() != "bearer ":
        return None
    token = authorization[7:].strip()
    return token or None
